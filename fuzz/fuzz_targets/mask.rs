//! Mask paths and a JSON document from arbitrary bytes, through the mask engine and namespace-name
//! translation (the body is `canopy::fuzz::mask_and_translate`, which unit tests also run).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| canopy::fuzz::mask_and_translate(data));
