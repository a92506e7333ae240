//! A request target and body from arbitrary bytes, through the query reader, the classifier,
//! selector judgements and the JSON, YAML and protobuf body readers (the body is
//! `canopy::fuzz::read_request`, which unit tests also run).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| canopy::fuzz::read_request(data));
