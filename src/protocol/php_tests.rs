use super::*;
use proptest::prelude::*;
use serde_json::json;

fn un(s: &str) -> Result<Php, PhpError> {
    unserialize(s.as_bytes(), Limits::SESSION)
}

fn ser(v: &Php) -> String {
    let mut out = Vec::new();
    serialize(v, &mut out);
    String::from_utf8(out).unwrap()
}

fn s(x: &str) -> Php {
    Php::Str(x.as_bytes().to_vec())
}

#[test]
fn scalars() {
    assert_eq!(un("N;"), Ok(Php::Null));
    assert_eq!(un("b:1;"), Ok(Php::Bool(true)));
    assert_eq!(un("b:0;"), Ok(Php::Bool(false)));
    assert_eq!(un("i:-42;"), Ok(Php::Int(-42)));
    assert_eq!(un("i:+5;"), Ok(Php::Int(5)));
    assert_eq!(un("d:0.5;"), Ok(Php::Float(0.5)));
    assert_eq!(un("d:1.0E+25;"), Ok(Php::Float(1e25)));
    assert_eq!(un("d:-INF;"), Ok(Php::Float(f64::NEG_INFINITY)));
    assert!(matches!(un("d:NAN;"), Ok(Php::Float(f)) if f.is_nan()));
    assert_eq!(un("s:5:\"a\"b;c\";"), Ok(s("a\"b;c")));
    assert_eq!(un("s:0:\"\";"), Ok(s("")));
}

#[test]
fn a_session_as_php_writes_it() {
    // php -r 'echo serialize(["uid"=>"42","n"=>3,"tags"=>["a","b"],"x"=>null,"ok"=>true]);'
    let text = "a:5:{s:3:\"uid\";s:2:\"42\";s:1:\"n\";i:3;s:4:\"tags\";a:2:{i:0;s:1:\"a\";i:1;s:1:\"b\";}s:1:\"x\";N;s:2:\"ok\";b:1;}";
    let v = un(text).unwrap();
    assert_eq!(ser(&v), text);
    let m = session_to_map(&v).unwrap();
    assert_eq!(
        Value::Object(m.clone()),
        json!({"uid":"42","n":3,"tags":["a","b"],"x":null,"ok":true})
    );
    // kefu keeps sessions as JSON objects, whose keys are sorted: PHP's order is not kept.
    let sorted = "a:5:{s:1:\"n\";i:3;s:2:\"ok\";b:1;s:4:\"tags\";a:2:{i:0;s:1:\"a\";i:1;s:1:\"b\";}s:3:\"uid\";s:2:\"42\";s:1:\"x\";N;}";
    assert_eq!(serialize_session(&m).unwrap(), sorted.as_bytes());
    assert_eq!(session_to_map(&un(sorted).unwrap()).unwrap(), m);
}

#[test]
fn numeric_string_keys_become_int_keys() {
    assert_eq!(
        un("a:1:{s:1:\"5\";i:1;}"),
        Ok(Php::Array(vec![(Key::Int(5), Php::Int(1))]))
    );
    assert_eq!(Key::from_bytes(b"05"), Key::Str(b"05".to_vec()));
    assert_eq!(Key::from_bytes(b"-0"), Key::Str(b"-0".to_vec()));
    assert_eq!(Key::from_bytes(b"-7"), Key::Int(-7));
    assert_eq!(
        Key::from_bytes(b"9223372036854775808"),
        Key::Str(b"9223372036854775808".to_vec())
    );
    // JSON object keys "1" and "01" stay two PHP keys.
    let m = json!({"1": "a", "01": "b"});
    let Value::Object(m) = m else { unreachable!() };
    assert_eq!(
        serialize_session(&m).unwrap(),
        b"a:2:{s:2:\"01\";s:1:\"b\";i:1;s:1:\"a\";}"
    );
}

#[test]
fn floats_written_as_php_8_writes_them() {
    // Each pair checked with php 8.2: php -r 'echo serialize(X);'
    for (f, want) in [
        (1e15, "1000000000000000"),
        (1e16, "10000000000000000"),
        (1e17, "1.0E+17"),
        (0.1, "0.1"),
        (1.0, "1"),
        (-0.0, "-0"),
        (0.0001, "0.0001"),
        (0.00001, "1.0E-5"),
        (1.5e300, "1.5E+300"),
        (123456789012345678.0, "1.2345678901234568E+17"),
        (9007199254740992.0, "9007199254740992"),
        (1.0 / 3.0, "0.3333333333333333"),
        (5e-324, "5.0E-324"),
        (-1.25e-7, "-1.25E-7"),
        (f64::INFINITY, "INF"),
        (f64::NEG_INFINITY, "-INF"),
        (f64::NAN, "NAN"),
    ] {
        assert_eq!(php_float(f), want, "{f}");
    }
}

#[test]
fn refused_and_malformed() {
    assert_eq!(
        un("O:8:\"stdClass\":0:{}"),
        Err(PhpError::Refused { at: 0, kind: b'O' })
    );
    assert_eq!(
        un("a:1:{i:0;r:1;}"),
        Err(PhpError::Refused { at: 9, kind: b'r' })
    );
    assert!(matches!(
        un("C:3:\"Foo\":0:{}"),
        Err(PhpError::Refused { .. })
    ));
    assert!(matches!(
        un("E:7:\"Foo:Bar\";"),
        Err(PhpError::Refused { .. })
    ));
    assert_eq!(un(""), Err(PhpError::Truncated));
    assert_eq!(un("N;x"), Err(PhpError::Trailing { at: 2 }));
    assert_eq!(un("b:2;"), Err(PhpError::BadNumber { at: 2 }));
    assert!(matches!(un("i:;"), Err(PhpError::BadNumber { .. })));
    assert!(matches!(
        un("i:99999999999999999999;"),
        Err(PhpError::BadNumber { .. })
    ));
    assert!(matches!(un("d:inf;"), Err(PhpError::BadNumber { .. })));
    assert!(matches!(
        un("s:1:\"ab\";"),
        Err(PhpError::Unexpected { .. })
    ));
    assert!(matches!(un("s:9:\"ab\";"), Err(PhpError::BadLength { .. })));
    assert!(matches!(un("s:-1:\"\";"), Err(PhpError::BadNumber { .. })));
    assert!(matches!(
        un("a:2:{i:0;i:1;i:0;i:2;}"),
        Err(PhpError::DuplicateKey { .. })
    ));
    assert!(matches!(
        un("a:1:{d:0.5;i:1;}"),
        Err(PhpError::Unexpected { .. })
    ));
    assert!(matches!(un("x"), Err(PhpError::Unexpected { at: 0 })));
}

#[test]
fn huge_declared_sizes_refused_without_allocating() {
    assert!(matches!(
        un("s:4294967295:\"\";"),
        Err(PhpError::BadLength { .. })
    ));
    assert!(matches!(
        un("s:99999999999:\"\";"),
        Err(PhpError::BadNumber { .. })
    ));
    assert!(matches!(
        un("a:4000000000:{}"),
        Err(PhpError::BadLength { .. })
    ));
}

#[test]
fn depth_and_item_limits() {
    let deep = "a:1:{i:0;".repeat(40) + "N;" + &"}".repeat(40);
    assert_eq!(un(&deep), Err(PhpError::TooDeep));
    let ok = "a:1:{i:0;".repeat(32) + "N;" + &"}".repeat(32);
    assert!(un(&ok).is_ok());
    let many = Php::Array((0..100).map(|i| (Key::Int(i), Php::Null)).collect());
    let text = ser(&many);
    let small = Limits {
        max_depth: 4,
        max_items: 100,
    };
    assert_eq!(
        unserialize(text.as_bytes(), small),
        Err(PhpError::TooManyItems)
    );
    let enough = Limits {
        max_depth: 4,
        max_items: 101,
    };
    assert_eq!(unserialize(text.as_bytes(), enough), Ok(many));
}

#[test]
fn json_mapping() {
    assert_eq!(to_json(&s("é")), Ok(json!("é")));
    assert_eq!(to_json(&Php::Str(vec![0xff])), Err(JsonError::NotUtf8));
    assert_eq!(to_json(&Php::Float(f64::NAN)), Err(JsonError::NotFinite));
    assert_eq!(to_json(&Php::Array(vec![])), Ok(json!([])));
    let sparse = Php::Array(vec![(Key::Int(1), Php::Int(1))]);
    assert_eq!(to_json(&sparse), Ok(json!({"1": 1})));
    assert_eq!(session_to_map(&Php::Int(1)), Err(JsonError::NotAnArray));
    assert_eq!(session_to_map(&Php::Null), Ok(Map::new()));
    assert_eq!(from_json(&json!(1.5)), Ok(Php::Float(1.5)));
    assert_eq!(from_json(&json!(u64::MAX)), Ok(Php::Float(u64::MAX as f64)));
}

fn php_value() -> impl Strategy<Value = Php> {
    let leaf = prop_oneof![
        Just(Php::Null),
        any::<bool>().prop_map(Php::Bool),
        any::<i64>().prop_map(Php::Int),
        any::<f64>()
            .prop_filter("NaN is not equal to itself", |f| !f.is_nan())
            .prop_map(Php::Float),
        proptest::collection::vec(any::<u8>(), 0..12).prop_map(Php::Str),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        proptest::collection::btree_map(
            prop_oneof![
                any::<i64>().prop_map(Key::Int),
                "[a-z0-9]{0,6}".prop_map(|k| Key::from_bytes(k.as_bytes())),
            ]
            .prop_map(KeyOrd),
            inner,
            0..6,
        )
        .prop_map(|m| Php::Array(m.into_iter().map(|(k, v)| (k.0, v)).collect()))
    })
}

/// Keys ordered only so a map can make them unique.
#[derive(Debug, Clone, PartialEq, Eq)]
struct KeyOrd(Key);

impl PartialOrd for KeyOrd {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}

impl Ord for KeyOrd {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        let rank = |k: &Key| match k {
            Key::Int(i) => (0, *i, Vec::new()),
            Key::Str(s) => (1, 0, s.clone()),
        };
        rank(&self.0).cmp(&rank(&o.0))
    }
}

proptest! {
    #[test]
    fn serialize_then_unserialize_is_identity(v in php_value()) {
        let mut out = Vec::new();
        serialize(&v, &mut out);
        prop_assert_eq!(unserialize(&out, Limits::SESSION), Ok(v));
    }

    #[test]
    fn arbitrary_bytes_never_panic(b in proptest::collection::vec(any::<u8>(), 0..64)) {
        let _ = unserialize(&b, Limits::SESSION);
    }

    #[test]
    fn truncations_are_errors(v in php_value()) {
        let mut out = Vec::new();
        serialize(&v, &mut out);
        for cut in 0..out.len() {
            prop_assert!(unserialize(&out[..cut], Limits::SESSION).is_err());
        }
    }
}
