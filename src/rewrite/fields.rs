//! Where a namespace name travels, in one table: every row names the place, an example as
//! upstream holds it (physical names, view `acme/web` owning `acme-web-dev`), the same in the
//! view, and the end-to-end test that checks the row against the real apiserver. The unit test
//! below runs each row's example through the translation Canopy applies.

/// How a row is translated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Carrier {
    /// A JSON document (request or response body, list item, watch event, Table).
    Json,
    /// A field selector in the query.
    FieldSelector,
}

/// One place a namespace name travels.
#[derive(Debug, Clone, Copy)]
pub struct Field {
    pub place: &'static str,
    pub carrier: Carrier,
    pub physical: &'static str,
    pub virtual_form: &'static str,
    /// `binary::test` of the end-to-end test covering the row.
    pub e2e: &'static str,
}

/// Every place Canopy translates (request paths are rewritten from the classified request:
/// `tenancy::objects_carry_virtual_namespaces_both_ways`).
pub const FIELDS: [Field; 11] = [
    Field {
        place: "object metadata.namespace (bodies, list items, watch events)",
        carrier: Carrier::Json,
        physical: r#"{"kind":"ConfigMap","metadata":{"name":"c","namespace":"acme-web-dev"}}"#,
        virtual_form: r#"{"kind":"ConfigMap","metadata":{"name":"c","namespace":"dev"}}"#,
        e2e: "tenancy::objects_carry_virtual_namespaces_both_ways, tenancy::watches_translate_every_event",
    },
    Field {
        place: "kubectl's last-applied-configuration annotation",
        carrier: Carrier::Json,
        physical: r#"{"metadata":{"annotations":{"kubectl.kubernetes.io/last-applied-configuration":"{\"metadata\":{\"namespace\":\"acme-web-dev\"}}\n"}}}"#,
        virtual_form: r#"{"metadata":{"annotations":{"kubectl.kubernetes.io/last-applied-configuration":"{\"metadata\":{\"namespace\":\"dev\"}}\n"}}}"#,
        e2e: "tenancy::objects_carry_virtual_namespaces_both_ways",
    },
    Field {
        place: "Namespace objects' metadata.name",
        carrier: Carrier::Json,
        physical: r#"{"kind":"Namespace","metadata":{"name":"acme-web-dev"}}"#,
        virtual_form: r#"{"kind":"Namespace","metadata":{"name":"dev"}}"#,
        e2e: "tenancy::each_view_lists_its_subtree_under_relative_names",
    },
    Field {
        place: "Events' involvedObject.namespace",
        carrier: Carrier::Json,
        physical: r#"{"kind":"Event","involvedObject":{"kind":"Pod","name":"p","namespace":"acme-web-dev"}}"#,
        virtual_form: r#"{"kind":"Event","involvedObject":{"kind":"Pod","name":"p","namespace":"dev"}}"#,
        e2e: "tenancy::events_and_namespace_selectors_use_virtual_names",
    },
    Field {
        place: "RoleBinding subjects[].namespace",
        carrier: Carrier::Json,
        physical: r#"{"subjects":[{"kind":"ServiceAccount","name":"b","namespace":"acme-web-dev"}]}"#,
        virtual_form: r#"{"subjects":[{"kind":"ServiceAccount","name":"b","namespace":"dev"}]}"#,
        e2e: "tenancy::rolebinding_subjects_name_virtual_namespaces",
    },
    Field {
        place: "ServiceAccount user and group names",
        carrier: Carrier::Json,
        physical: r#"{"subjects":[{"kind":"Group","name":"system:serviceaccounts:acme-web-dev"}],"user":"system:serviceaccount:acme-web-dev:b"}"#,
        virtual_form: r#"{"subjects":[{"kind":"Group","name":"system:serviceaccounts:dev"}],"user":"system:serviceaccount:dev:b"}"#,
        e2e: "tenancy::rolebinding_subjects_name_virtual_namespaces",
    },
    Field {
        place: "Table rows: embedded objects and cells",
        carrier: Carrier::Json,
        physical: r#"{"kind":"Table","rows":[{"cells":["rb","acme-web-dev/b"],"object":{"metadata":{"namespace":"acme-web-dev"}}}]}"#,
        virtual_form: r#"{"kind":"Table","rows":[{"cells":["rb","dev/b"],"object":{"metadata":{"namespace":"dev"}}}]}"#,
        e2e: "tenancy::rolebinding_subjects_name_virtual_namespaces, across::kubectl_lists_across_the_views_namespaces_only",
    },
    Field {
        place: "access-review attributes",
        carrier: Carrier::Json,
        physical: r#"{"spec":{"resourceAttributes":{"namespace":"acme-web-dev","verb":"get"}}}"#,
        virtual_form: r#"{"spec":{"resourceAttributes":{"namespace":"dev","verb":"get"}}}"#,
        e2e: "tenancy::can_i_tells_what_canopy_allows",
    },
    Field {
        place: "Status errors (message, details.name)",
        carrier: Carrier::Json,
        physical: r#"{"kind":"Status","message":"namespaces \"acme-web-dev\" not found","details":{"name":"acme-web-dev"}}"#,
        virtual_form: r#"{"kind":"Status","message":"namespaces \"dev\" not found","details":{"name":"dev"}}"#,
        e2e: "tenancy::objects_carry_virtual_namespaces_both_ways",
    },
    Field {
        place: "fieldSelector metadata.namespace / involvedObject.namespace",
        carrier: Carrier::FieldSelector,
        physical: "metadata.namespace=acme-web-dev,involvedObject.namespace=acme-web-dev",
        virtual_form: "metadata.namespace=dev,involvedObject.namespace=dev",
        e2e: "across::kubectl_lists_across_the_views_namespaces_only, tenancy::events_and_namespace_selectors_use_virtual_names",
    },
    Field {
        place: "fieldSelector metadata.name on namespaces",
        carrier: Carrier::FieldSelector,
        physical: "metadata.name=acme-web-dev",
        virtual_form: "metadata.name=dev",
        e2e: "tenancy::events_and_namespace_selectors_use_virtual_names",
    },
];

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;
    use crate::policy::tests::example;
    use crate::rewrite::ViewNames;
    use crate::rewrite::json::{map_namespace_names, map_namespaces, map_status_message};
    use crate::rewrite::selector::map_field_selector;

    #[test]
    fn every_row_translates_both_ways() {
        let tree = example();
        let names = ViewNames::new(&tree, tree.node("acme/web").unwrap());
        let (to_virtual, to_physical) = (|p: &str| names.to_virtual(p), |v: &str| names.to_physical(v));
        for row in FIELDS {
            match row.carrier {
                Carrier::Json => {
                    let mut doc: Value = serde_json::from_str(row.physical).unwrap();
                    map_namespaces(&mut doc, &to_virtual);
                    map_namespace_names(&mut doc, &to_virtual);
                    map_status_message(&mut doc, "acme-web-dev", "dev");
                    let expected: Value = serde_json::from_str(row.virtual_form).unwrap();
                    assert_eq!(doc, expected, "{}", row.place);
                    let mut back = expected.clone();
                    map_namespaces(&mut back, &to_physical);
                    if !row.place.starts_with("Namespace objects") && !row.place.starts_with("Status") {
                        assert_eq!(back, serde_json::from_str::<Value>(row.physical).unwrap(), "{} back", row.place);
                    }
                }
                Carrier::FieldSelector => {
                    let names_too = row.place.contains("on namespaces");
                    assert_eq!(
                        map_field_selector(row.virtual_form, names_too, &to_physical),
                        row.physical,
                        "{}",
                        row.place
                    );
                }
            }
        }
    }
}
