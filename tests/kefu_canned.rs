//! Canned replies (docs/kefu-protocol.md "Desk"): the business's (its admins manage them)
//! and each agent's own, over HTTP with the agent token. An agent sees the business's and
//! its own, never a colleague's own, and another business sees none of them. Real binary.

mod common;

use common::kefu_app::*;
use serde_json::{json, Value};

fn canned(k: &Kefu, token: Option<&str>, body: Value) -> (u16, Value) {
    api(k, "POST", "/api/canned", token, &body)
}

fn list(k: &Kefu, token: &str) -> Vec<(String, String, String)> {
    let (st, v) = api(k, "GET", "/api/canned", Some(token), &Value::Null);
    assert_eq!(st, 200, "{v}");
    v["canned"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["scope"].as_str().unwrap().to_string(),
                c["shortcut"].as_str().unwrap().to_string(),
                c["text"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn s3(a: &str, b: &str, c: &str) -> (String, String, String) {
    (a.into(), b.into(), c.into())
}

#[test]
fn business_and_own_replies_stay_in_their_business() {
    let k = Kefu::shop_and_other(1, "max_text_chars = 200");
    let (alice, bob, zed) = (
        k.agent_token("shop", "alice"),
        k.agent_token("shop", "bob"),
        k.agent_token("other", "zed"),
    );
    let hi = "您好 {visitor_name}，我是 {agent_name}。";
    let (st, a) = canned(
        &k,
        Some(&alice),
        json!({"op":"add","scope":"business","shortcut":"hi","text":hi}),
    );
    assert_eq!(st, 200, "{a}");
    assert_eq!(
        (a["scope"].as_str(), a["text"].as_str()),
        (Some("business"), Some(hi))
    );
    let hi_id = a["id"].as_i64().unwrap();
    let (st, b) = canned(
        &k,
        Some(&bob),
        json!({"op":"add","scope":"agent","shortcut":"bye","text":"再见"}),
    );
    assert_eq!(st, 200, "{b}");
    let bye_id = b["id"].as_i64().unwrap();
    // Bob is a plain agent: the business's replies are not his to manage.
    let (st, e) = canned(
        &k,
        Some(&bob),
        json!({"op":"add","scope":"business","shortcut":"x","text":"x"}),
    );
    assert_eq!((st, e["code"].as_str()), (403, Some("10004")), "{e}");
    let bob_upd = json!({"op":"update","id":hi_id,"shortcut":"hi","text":"mine now"});
    assert_eq!(canned(&k, Some(&bob), bob_upd).0, 403);
    assert_eq!(
        canned(&k, Some(&bob), json!({"op":"delete","id":hi_id})).0,
        403
    );
    // A shortcut is unique per owner: bob may have his own "hi" beside the business's.
    assert_eq!(
        canned(
            &k,
            Some(&alice),
            json!({"op":"add","scope":"business","shortcut":"hi","text":"x"})
        )
        .0,
        409
    );
    assert_eq!(
        canned(
            &k,
            Some(&bob),
            json!({"op":"add","scope":"agent","shortcut":"hi","text":"Hi!"})
        )
        .0,
        200
    );

    assert_eq!(list(&k, &alice), vec![s3("business", "hi", hi)]);
    assert_eq!(
        list(&k, &bob),
        vec![
            s3("agent", "bye", "再见"),
            s3("agent", "hi", "Hi!"),
            s3("business", "hi", hi)
        ]
    );
    assert!(list(&k, &zed).is_empty(), "another business sees none");

    // Only the owner changes a reply; another business's or a colleague's own is "not found".
    let upd =
        |id: i64| json!({"op":"update","id":id,"shortcut":"hello","text":"Hello {visitor_name}"});
    assert_eq!(canned(&k, Some(&zed), upd(hi_id)).0, 404);
    assert_eq!(canned(&k, Some(&alice), upd(bye_id)).0, 404);
    assert_eq!(
        canned(&k, Some(&zed), json!({"op":"delete","id":bye_id})).0,
        404
    );
    let (st, u) = canned(&k, Some(&alice), upd(hi_id));
    assert_eq!((st, u["shortcut"].as_str()), (200, Some("hello")), "{u}");
    assert_eq!(
        canned(&k, Some(&bob), json!({"op":"delete","id":bye_id})).0,
        200
    );
    assert_eq!(
        canned(&k, Some(&bob), json!({"op":"delete","id":bye_id})).0,
        404
    );
    assert_eq!(
        list(&k, &bob),
        vec![
            s3("business", "hello", "Hello {visitor_name}"),
            s3("agent", "hi", "Hi!")
        ]
    );

    // Visitors and strangers.
    let (_, vl) = k.visitor("shop");
    let vt = vl["token"].as_str().unwrap();
    assert_eq!(api(&k, "GET", "/api/canned", Some(vt), &Value::Null).0, 403);
    assert_eq!(
        canned(
            &k,
            Some(vt),
            json!({"op":"add","scope":"agent","shortcut":"x","text":"x"})
        )
        .0,
        403
    );
    assert_eq!(api(&k, "GET", "/api/canned", None, &Value::Null).0, 401);
    assert_eq!(
        api(&k, "GET", "/api/canned", Some("forged.token"), &Value::Null).0,
        401
    );

    // Hostile bodies.
    for bad in [
        json!({"op":"add","scope":"agent","shortcut":"a b","text":"x"}),
        json!({"op":"add","scope":"agent","shortcut":"/x","text":"x"}),
        json!({"op":"add","scope":"agent","shortcut":"","text":"x"}),
        json!({"op":"add","scope":"agent","shortcut":"x".repeat(33),"text":"x"}),
        json!({"op":"add","scope":"agent","shortcut":"ok","text":"  "}),
        json!({"op":"add","scope":"agent","shortcut":"ok","text":"y".repeat(201)}),
        json!({"op":"add","scope":"world","shortcut":"ok","text":"x"}),
        json!({"op":"add","scope":"agent","shortcut":"ok","text":"x","bid":"other"}),
        json!({"op":"drop","id":1}),
        json!({"op":"update","id":"1","shortcut":"ok","text":"x"}),
        json!({"shortcut":"ok","text":"x"}),
        json!(null),
    ] {
        let (st, e) = canned(&k, Some(&alice), bad.clone());
        assert_eq!(
            (st, e["code"].as_str()),
            (400, Some("10005")),
            "{bad} -> {e}"
        );
    }

    // An owner keeps at most 200.
    for i in 0..199 {
        let (st, e) = canned(
            &k,
            Some(&zed),
            json!({"op":"add","scope":"agent","shortcut":format!("s{i}"),"text":"x"}),
        );
        assert_eq!(st, 200, "{i}: {e}");
    }
    assert_eq!(
        canned(
            &k,
            Some(&zed),
            json!({"op":"add","scope":"agent","shortcut":"last","text":"x"})
        )
        .0,
        200
    );
    let (st, e) = canned(
        &k,
        Some(&zed),
        json!({"op":"add","scope":"agent","shortcut":"over","text":"x"}),
    );
    assert_eq!(st, 400, "{e}");
    assert_eq!(list(&k, &zed).len(), 200);
    assert_eq!(list(&k, &alice).len(), 1, "zed's pile is zed's");
}
