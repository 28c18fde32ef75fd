use super::*;
use serde_json::json;

fn sel(s: &str) -> LabelSelector {
    LabelSelector::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
}

#[test]
fn equality_and_set_based_requirements() {
    let l = json!({"app": "web", "tier": "front", "n": "5"});
    let cases = [
        ("", true),
        ("app=web", true),
        ("app==web", true),
        ("app!=web", false),
        ("app!=db", true),
        ("missing!=x", true),
        ("app in (web,db)", true),
        ("app in (db)", false),
        ("app notin (db)", true),
        ("missing notin (db)", true),
        ("app notin (web)", false),
        ("app", true),
        ("missing", false),
        ("!missing", true),
        ("!app", false),
        ("app=web,tier=front", true),
        ("app=web,tier=back", false),
        (" app = web , tier in ( front ) ", true),
        ("n>4", true),
        ("n<5", false),
        ("missing>1", false),
        ("app in (in)", false),
        ("in=x", false),
        ("app=", false),
    ];
    for (s, expected) in cases {
        assert_eq!(sel(s).matches(Some(&l)), expected, "{s}");
    }
    assert!(sel("app notin (x)").matches(None));
    assert!(!sel("app").matches(None));
    assert!(sel("app=").matches(Some(&json!({"app": ""}))));
    assert!(sel("x in (,a)").matches(Some(&json!({"x": ""}))));
}

#[test]
fn parse_errors_match_the_server() {
    let cases = [
        (
            "a b",
            "unable to parse requirement: found 'b', expected: in, notin, =, ==, !=, gt, lt",
        ),
        (
            "a in b",
            "unable to parse requirement: found 'b' expected: '('",
        ),
        (
            "a in (b",
            "unable to parse requirement: found '', expected: ',' or ')'",
        ),
        ("a=b,", "found '', expected: identifier after ','"),
        ("a=b c", "found 'c', expected: ',' or 'end of string'"),
        (
            "=a",
            "found '=', expected: !, identifier, or 'end of string'",
        ),
        (
            "!=a",
            "found '!=', expected: !, identifier, or 'end of string'",
        ),
        (
            "a=(",
            "unable to parse requirement: found '(', expected: identifier",
        ),
        (
            "a>b",
            "unable to parse requirement: values[0]: Invalid value: \"b\": for 'Gt', 'Lt' operators, the value must be an integer",
        ),
    ];
    for (s, expected) in cases {
        assert_eq!(LabelSelector::parse(s), Err(expected.to_string()), "{s}");
    }
    assert_eq!(
        LabelSelector::parse("-bad=x"),
        Err("unable to parse requirement: <nil>: Invalid value: \"-bad\": name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')".into())
    );
    assert_eq!(
        LabelSelector::parse("app=a@b"),
        Err("unable to parse requirement: values[0][app]: Invalid value: \"a@b\": a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')".into())
    );
}

#[test]
fn label_selector_objects() {
    let s = LabelSelector::from_label_selector(&json!({
        "matchLabels": {"app": "web"},
        "matchExpressions": [{"key": "tier", "operator": "In", "values": ["a", "b"]}, {"key": "x", "operator": "DoesNotExist"}]
    }))
    .unwrap();
    assert!(s.matches(Some(&json!({"app": "web", "tier": "b"}))));
    assert!(!s.matches(Some(&json!({"app": "web", "tier": "b", "x": "1"}))));
    assert!(!s.matches(Some(&json!({"app": "web"}))));
    let everything = LabelSelector::from_label_selector(&json!({})).unwrap();
    assert!(everything.is_empty() && everything.matches(None));
    let nothing = LabelSelector::from_label_selector(&Value::Null).unwrap();
    assert!(!nothing.is_empty() && !nothing.matches(Some(&json!({"a": "b"}))));
    assert_eq!(
        LabelSelector::from_label_selector(
            &json!({"matchExpressions": [{"key": "a", "operator": "Gt", "values": ["1"]}]})
        ),
        Err("\"Gt\" is not a valid label selector operator".into())
    );
    assert!(
        LabelSelector::from_label_selector(
            &json!({"matchExpressions": [{"key": "a", "operator": "In"}]})
        )
        .is_err()
    );
    assert!(
        LabelSelector::from_label_selector(
            &json!({"matchExpressions": [{"key": "a", "operator": "Exists", "values": ["x"]}]})
        )
        .is_err()
    );
}

#[test]
fn field_selectors() {
    let supported = [
        "metadata.name",
        "metadata.namespace",
        "status.phase",
        "spec.unschedulable",
    ];
    let obj = json!({"metadata": {"name": "a,b", "namespace": "ns"}, "status": {"phase": "Running"}, "spec": {"unschedulable": true}});
    let cases = [
        ("", true),
        ("metadata.namespace=ns", true),
        ("metadata.namespace==ns", true),
        ("metadata.namespace!=ns", false),
        ("metadata.name=a\\,b", true),
        ("metadata.namespace=ns,status.phase!=Pending", true),
        ("status.phase=", false),
        ("spec.unschedulable=true", true),
    ];
    for (s, expected) in cases {
        let parsed = FieldSelector::parse(s, &supported).unwrap_or_else(|e| panic!("{s}: {e}"));
        assert_eq!(parsed.matches(&obj), expected, "{s}");
    }
    assert!(
        FieldSelector::parse("metadata.name=", &supported)
            .unwrap()
            .matches(&json!({"metadata": {}}))
    );
    assert_eq!(
        FieldSelector::parse("spec.foo=x", &supported),
        Err("field label not supported: spec.foo".into())
    );
    assert_eq!(
        FieldSelector::parse("metadata.name", &supported),
        Err("invalid selector: 'metadata.name'; can't understand 'metadata.name'".into())
    );
    assert_eq!(
        FieldSelector::parse("metadata.name=a=b", &supported),
        Err("invalid field selector: unescaped character in value: =".into())
    );
    assert_eq!(
        FieldSelector::parse("metadata.name=a\\x", &supported),
        Err("invalid field selector: invalid escape sequence: \\x".into())
    );
}
