//! A business's face (docs/web.md "Look and feel"): `GET /api/business/profile` is public,
//! `POST /api/business/settings` only for the business's own agents, and `kefu business
//! set|show` / `kefu agent avatar` on the host. Real binary, real HTTP, two workers.

mod common;

use common::http::http_json;
use common::kefu_app::*;
use serde_json::{json, Value};

fn profile(k: &Kefu, bid: &str) -> (u16, Value) {
    http_json(
        &k.addr(),
        "GET",
        &format!("/api/business/profile?bid={bid}"),
        &[],
        b"",
    )
}

fn settings(k: &Kefu, token: Option<&str>, body: Value) -> (u16, Value) {
    let auth = token.map(|t| format!("Bearer {t}"));
    let mut h = vec![("Content-Type", "application/json")];
    if let Some(a) = &auth {
        h.push(("Authorization", a.as_str()));
    }
    http_json(
        &k.addr(),
        "POST",
        "/api/business/settings",
        &h,
        body.to_string().as_bytes(),
    )
}

fn upload(k: &Kefu, token: &str, png: &[u8]) -> String {
    let auth = format!("Bearer {token}");
    let (st, up) = http_json(
        &k.addr(),
        "POST",
        "/api/upload",
        &[("Authorization", &auth), ("Content-Type", "image/png")],
        png,
    );
    assert_eq!(st, 200, "{up}");
    up["url"].as_str().unwrap().to_string()
}

#[test]
fn admins_set_their_business_face_and_nobody_else_can() {
    let k = Kefu::shop_and_other(2, "");
    let alice = k.agent_token("shop", "alice");
    let zed = k.agent_token("other", "zed");

    // Public, and unknown or malformed bids say so.
    let (st, p) = profile(&k, "shop");
    assert_eq!(st, 200, "{p}");
    assert_eq!(
        (p["color"].as_str(), p["welcome"].as_str()),
        (Some(""), Some(""))
    );
    assert_eq!(p["agents"][0]["name"], "Alice");
    assert_eq!(profile(&k, "nosuchshop").0, 404);
    assert_eq!(profile(&k, "a%20b").0, 400);

    // Alice sets her business's face, a logo and her own avatar from her uploads.
    let logo = upload(&k, &alice, &tiny_png());
    let (st, p) = settings(
        &k,
        Some(&alice),
        json!({"name":"<b>Shop</b> 一号","color":"#E4393C","welcome":"欢迎光临！\r\n有问题随时问我们。",
               "offline":"We answer within a day.","logo":logo,"avatar":logo,"agent_name":"Alice 客服"}),
    );
    assert_eq!(st, 200, "{p}");
    let (_, p) = profile(&k, "shop");
    assert_eq!(p["name"], "<b>Shop</b> 一号"); // stored as text; the pages render text only
    assert_eq!(p["color"], "#e4393c");
    assert_eq!(p["welcome"], "欢迎光临！\n有问题随时问我们。");
    assert_eq!(p["offline"], "We answer within a day.");
    assert_eq!(p["logo"], logo.as_str());
    assert_eq!(p["agents"][0]["avatar"], logo.as_str());
    assert_eq!(p["agents"][0]["name"], "Alice 客服");

    // Hostile values are refused and change nothing (the valid fields beside them neither).
    for bad in [
        json!({"color":"red; background:url(//evil)","name":"X"}),
        json!({"color":"#abc"}),
        json!({"name":""}),
        json!({"name":"a".repeat(41)}),
        json!({"name":"a\u{0}b"}),
        json!({"welcome":"w".repeat(501)}),
        json!({"logo":"https://evil.example/x.png"}),
        json!({"logo":"javascript:alert(1)"}),
        json!({"avatar":"/uploads/../kefu.db"}),
        json!({"agent_name":"  "}),
        json!({"agent_name":"x".repeat(65)}),
        json!({"bid":"other","name":"Hijack"}),
        json!({"name":{"x":1}}),
    ] {
        let (st, e) = settings(&k, Some(&alice), bad.clone());
        assert_eq!(st, 400, "{bad} -> {e}");
    }
    // A well-formed upload URL that is not this business's upload.
    let zed_img = {
        let (mut v, vl) = k.visitor("other");
        say(&mut v, None, "c1", "hi");
        upload(&k, vl["token"].as_str().unwrap(), &other_png())
    };
    assert_ne!(zed_img, logo);
    let (st, e) = settings(&k, Some(&alice), json!({ "logo": zed_img }));
    assert_eq!(st, 400, "{e}");
    let (_, p) = profile(&k, "shop");
    assert_eq!(
        (p["name"].as_str(), p["color"].as_str()),
        (Some("<b>Shop</b> 一号"), Some("#e4393c"))
    );

    // Who may not: no token, a bad token, a visitor of the business, an agent of another
    // business (which only ever changes its own).
    assert_eq!(settings(&k, None, json!({"name":"Nope"})).0, 401);
    assert_eq!(
        settings(&k, Some("forged.token"), json!({"name":"Nope"})).0,
        401
    );
    let (_, vl) = k.visitor("shop");
    let (st, e) = settings(&k, vl["token"].as_str(), json!({"name":"Nope"}));
    assert_eq!(st, 403, "{e}");
    // A plain agent changes its own face, not the business's.
    let bob = k.agent_token("shop", "bob");
    let (st, e) = settings(&k, Some(&bob), json!({"name":"Bob's shop"}));
    assert_eq!(st, 403, "{e}");
    let (st, e) = settings(&k, Some(&bob), json!({"agent_name":"Bobby"}));
    assert_eq!(st, 200, "{e}");
    assert_eq!(profile(&k, "shop").1["agents"][1]["name"], "Bobby");
    let (st, _) = settings(&k, Some(&zed), json!({"name":"Zed's"}));
    assert_eq!(st, 200);
    assert_eq!(profile(&k, "shop").1["name"], "<b>Shop</b> 一号");
    assert_eq!(profile(&k, "other").1["name"], "Zed's");
    // A removed agent's token stops working.
    k.cli(&["agent", "remove", "--bid", "other", "--id", "zed"]);
    assert_eq!(settings(&k, Some(&zed), json!({"name":"Ghost"})).0, 401);
    // Only POST.
    let (st, _) = http_json(&k.addr(), "GET", "/api/business/settings", &[], b"");
    assert_eq!(st, 405);

    // The host's CLI: the same checks, and an image file through the upload path.
    let dir = std::env::temp_dir().join(format!("kefu-profile-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let png = dir.join("logo.png");
    std::fs::write(&png, tiny_png()).unwrap();
    let svg = dir.join("logo.svg");
    std::fs::write(&svg, "<svg onload=alert(1)></svg>").unwrap();
    let out = k.cli(&[
        "business",
        "set",
        "--bid",
        "shop",
        "--color",
        "#00a870",
        "--welcome",
        "Hi there",
        "--logo",
        png.to_str().unwrap(),
    ]);
    assert!(out.contains("color:   #00a870"), "{out}");
    let (_, p) = profile(&k, "shop");
    assert_eq!(
        (p["color"].as_str(), p["welcome"].as_str()),
        (Some("#00a870"), Some("Hi there"))
    );
    assert!(p["logo"].as_str().unwrap().starts_with("/uploads/"));
    let e = k.cli_fails(&["business", "set", "--bid", "shop", "--color", "blue"]);
    assert!(e.contains("#rrggbb"), "{e}");
    let e = k.cli_fails(&[
        "business",
        "set",
        "--bid",
        "shop",
        "--logo",
        svg.to_str().unwrap(),
    ]);
    assert!(e.contains("not a PNG"), "{e}");
    let e = k.cli_fails(&["business", "set", "--bid", "nope", "--name", "N"]);
    assert!(e.contains("no such business"), "{e}");
    k.cli(&[
        "agent",
        "set",
        "--bid",
        "shop",
        "--id",
        "alice",
        "--no-avatar",
        "--name",
        "Alice W.",
    ]);
    assert_eq!(profile(&k, "shop").1["agents"][0]["avatar"], "");
    assert_eq!(profile(&k, "shop").1["agents"][0]["name"], "Alice W.");
    let e = k.cli_fails(&["agent", "set", "--bid", "shop", "--id", "alice"]);
    assert!(e.contains("nothing to change"), "{e}");
    let e = k.cli_fails(&[
        "agent", "set", "--bid", "shop", "--id", "nobody", "--name", "N",
    ]);
    assert!(e.contains("no such agent"), "{e}");
    assert_eq!(profile(&k, "shop").1["color"], "#00a870");
    let _ = std::fs::remove_dir_all(&dir);
}

/// The widget's look and texts (title, side, leave-a-message prompt beside colour, welcome
/// and offline text): set by the business's admin only, validated, stored as text, public
/// through the profile, and one business never sees or changes another's.
#[test]
fn widget_look_is_set_by_admins_only_and_stays_in_its_business() {
    let k = Kefu::shop_and_other(2, "");
    let alice = k.agent_token("shop", "alice");
    let bob = k.agent_token("shop", "bob");
    let zed = k.agent_token("other", "zed");
    let look = |p: &Value| {
        (
            p["title"].as_str().map(str::to_string),
            p["position"].as_str().map(str::to_string),
            p["leave_prompt"].as_str().map(str::to_string),
        )
    };
    let unset = (
        Some(String::new()),
        Some("right".to_string()),
        Some(String::new()),
    );
    assert_eq!(look(&profile(&k, "shop").1), unset);

    // Markup is stored as the text it is: the pages set it with textContent.
    let title = "<script>alert(1)</script>";
    let prompt = "<img src=x onerror=alert(1)> 请留言";
    let (st, p) = settings(
        &k,
        Some(&alice),
        json!({"title": format!(" {title} "), "position": "left", "leave_prompt": prompt,
               "color": "#00A870", "welcome": "Hi", "offline": "Back at 9"}),
    );
    assert_eq!(st, 200, "{p}");
    assert_eq!(look(&p), look(&profile(&k, "shop").1));
    let (_, p) = profile(&k, "shop");
    assert_eq!(
        look(&p),
        (
            Some(title.to_string()),
            Some("left".to_string()),
            Some(prompt.to_string())
        )
    );
    assert_eq!(
        (
            p["color"].as_str(),
            p["welcome"].as_str(),
            p["offline"].as_str()
        ),
        (Some("#00a870"), Some("Hi"), Some("Back at 9"))
    );

    // Bad values are refused whole: nothing of the call is stored.
    for bad in [
        json!({"position": "top"}),
        json!({"position": "LEFT"}),
        json!({"position": 1}),
        json!({"title": "t".repeat(41)}),
        json!({"title": "a\nb"}),
        json!({"leave_prompt": "p".repeat(121)}),
        json!({"leave_prompt": "a\u{1b}[31m"}),
        json!({"title": "Fine", "color": "#abc"}),
        json!({"title": "Fine", "position": "left", "bid": "other"}),
    ] {
        let (st, e) = settings(&k, Some(&alice), bad.clone());
        assert_eq!(st, 400, "{bad} -> {e}");
    }
    assert_eq!(profile(&k, "shop").1["title"], title);

    // A plain agent, a visitor and no token are refused; the look is unchanged.
    for body in [
        json!({"title": "Bob's"}),
        json!({"position": "right"}),
        json!({"leave_prompt": "x"}),
    ] {
        let (st, e) = settings(&k, Some(&bob), body.clone());
        assert_eq!(st, 403, "{body} -> {e}");
    }
    let (_, vl) = k.visitor("shop");
    assert_eq!(
        settings(&k, vl["token"].as_str(), json!({"title": "V"})).0,
        403
    );
    assert_eq!(settings(&k, None, json!({"title": "N"})).0, 401);
    assert_eq!(
        look(&profile(&k, "shop").1),
        (
            Some(title.to_string()),
            Some("left".to_string()),
            Some(prompt.to_string())
        )
    );

    // Another business's admin changes its own look only, and never sees shop's.
    let (st, p) = settings(
        &k,
        Some(&zed),
        json!({"title": "Zed help", "position": "right", "leave_prompt": "Write to Zed"}),
    );
    assert_eq!(st, 200, "{p}");
    assert_eq!(p["bid"], "other");
    assert_eq!(p["title"], "Zed help");
    assert_eq!(profile(&k, "shop").1["title"], title);
    assert_eq!(profile(&k, "shop").1["position"], "left");
    assert_eq!(profile(&k, "other").1["leave_prompt"], "Write to Zed");
    assert_eq!(profile(&k, "other").1["color"], "");

    // "" resets a text to the pages' default; an absent field is kept.
    let (st, _) = settings(&k, Some(&alice), json!({"title": "", "position": "right"}));
    assert_eq!(st, 200);
    assert_eq!(
        look(&profile(&k, "shop").1),
        (
            Some(String::new()),
            Some("right".to_string()),
            Some(prompt.to_string())
        )
    );
    let out = k.cli(&["business", "show", "--bid", "shop"]);
    assert!(out.contains("side:    right"), "{out}");
    // The host's CLI sets the same fields with the same checks.
    let out = k.cli(&[
        "business",
        "set",
        "--bid",
        "shop",
        "--position",
        "left",
        "--title",
        "CLI title",
    ]);
    assert!(
        out.contains("side:    left") && out.contains("title:   CLI title"),
        "{out}"
    );
    assert_eq!(profile(&k, "shop").1["position"], "left");
    k.cli_fails(&["business", "set", "--bid", "shop", "--position", "top"]);
    let long = "t".repeat(41);
    let e = k.cli_fails(&["business", "set", "--bid", "shop", "--title", &long]);
    assert!(e.contains("title must be"), "{e}");
}

/// [`tiny_png`] with other pixel data (another file, same checks).
fn other_png() -> Vec<u8> {
    let mut png = tiny_png();
    // Signature (8) + IHDR chunk (25) + IDAT length and type (8): the first IDAT byte.
    png[41] = 8;
    png
}
