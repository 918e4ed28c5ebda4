use super::*;
use proptest::prelude::*;

fn agreed(h: &str) -> Option<String> {
    negotiate([h]).map(|a| a.response())
}

const BOTH: &str = "permessage-deflate; server_no_context_takeover; client_no_context_takeover";

#[test]
fn plain_offer_gets_both_no_context_takeover() {
    assert_eq!(agreed("permessage-deflate").as_deref(), Some(BOTH));
    // What browsers send.
    assert_eq!(
        agreed("permessage-deflate; client_max_window_bits").as_deref(),
        Some(BOTH)
    );
    assert_eq!(agreed("PerMessage-Deflate").as_deref(), Some(BOTH));
}

#[test]
fn all_four_parameters() {
    let o = parse_extension(
        "permessage-deflate; server_no_context_takeover; client_no_context_takeover; \
         server_max_window_bits=10; client_max_window_bits=12",
    )
    .unwrap()
    .unwrap();
    assert_eq!(
        o,
        Offer {
            server_no_context_takeover: true,
            client_no_context_takeover: true,
            server_max_window_bits: Some(10),
            client_max_window_bits: Some(Some(12)),
        }
    );
    let a = accept(&o);
    assert_eq!(a.server_window_bits, 10);
    assert_eq!(a.response(), format!("{BOTH}; server_max_window_bits=10"));
    let o = parse_extension("permessage-deflate;client_max_window_bits")
        .unwrap()
        .unwrap();
    assert_eq!(o.client_max_window_bits, Some(None));
    assert_eq!(accept(&o).server_window_bits, MAX_WINDOW_BITS);
}

#[test]
fn window_bits_values() {
    for n in 8..=15u8 {
        let h = format!("permessage-deflate; server_max_window_bits={n}");
        assert_eq!(negotiate([h.as_str()]).unwrap().server_window_bits, n);
        let q = format!("permessage-deflate; server_max_window_bits=\"{n}\"");
        assert_eq!(negotiate([q.as_str()]).unwrap().server_window_bits, n);
        let c = format!("permessage-deflate; client_max_window_bits={n}");
        assert!(negotiate([c.as_str()]).is_some());
    }
    for bad in [
        "7", "16", "08", "015", "", "1 5", "0x9", "+9", "9.0", "\"\"", "\"1\\5\"",
    ] {
        let h = format!("permessage-deflate; server_max_window_bits={bad}");
        assert_eq!(negotiate([h.as_str()]), None, "{h}");
        let c = format!("permessage-deflate; client_max_window_bits={bad}");
        assert_eq!(negotiate([c.as_str()]), None, "{c}");
    }
}

#[test]
fn invalid_offers_are_declined_with_their_reason() {
    let cases = [
        ("permessage-deflate; foo", OfferError::UnknownParam),
        ("permessage-deflate; foo=1", OfferError::UnknownParam),
        (
            "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
            OfferError::DuplicateParam,
        ),
        (
            "permessage-deflate; client_max_window_bits; client_max_window_bits=9",
            OfferError::DuplicateParam,
        ),
        (
            "permessage-deflate; server_no_context_takeover=1",
            OfferError::UnexpectedValue,
        ),
        (
            "permessage-deflate; client_no_context_takeover=\"\"",
            OfferError::UnexpectedValue,
        ),
        (
            "permessage-deflate; server_max_window_bits",
            OfferError::BadWindowBits,
        ),
        (
            "permessage-deflate; server_max_window_bits=16",
            OfferError::BadWindowBits,
        ),
        ("permessage-deflate; ", OfferError::Syntax),
        ("permessage-deflate; a b", OfferError::Syntax),
        ("permessage-deflate; x=\"1", OfferError::Syntax),
        ("per message-deflate", OfferError::Syntax),
    ];
    for (h, want) in cases {
        assert_eq!(parse_extension(h), Err(want), "{h}");
        assert_eq!(negotiate([h]), None, "{h}");
    }
}

#[test]
fn first_acceptable_offer_wins() {
    // An invalid first offer is skipped, the next one taken (§5.1: offers in preference order).
    let h = "permessage-deflate; server_max_window_bits=20, permessage-deflate; server_max_window_bits=11, permessage-deflate";
    assert_eq!(negotiate([h]).unwrap().server_window_bits, 11);
    // Other extensions are ignored; several header lines form one list.
    let a = negotiate([
        "x-webkit-deflate-frame",
        "foo; a=\"b,c\", permessage-deflate",
    ]);
    assert_eq!(a.unwrap().server_window_bits, 15);
    assert_eq!(negotiate(["x-webkit-deflate-frame", "foo"]), None);
    assert_eq!(negotiate(Vec::<&str>::new()), None);
    // Empty list elements are allowed by the list grammar.
    assert!(negotiate([", ,permessage-deflate"]).is_some());
    // Autobahn 13.7's offer list: the first one is taken.
    let a = negotiate([
        "permessage-deflate; client_no_context_takeover; client_max_window_bits; server_max_window_bits=9; server_no_context_takeover, permessage-deflate; client_no_context_takeover; client_max_window_bits; server_no_context_takeover, permessage-deflate; client_no_context_takeover; client_max_window_bits",
    ])
    .unwrap();
    assert_eq!(a.server_window_bits, 9);
    assert_eq!(a.response(), format!("{BOTH}; server_max_window_bits=9"));
}

#[test]
fn unterminated_quote_declines_the_header() {
    assert_eq!(negotiate(["foo; a=\"x, permessage-deflate"]), None);
}

fn param() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("server_no_context_takeover".to_string()),
        Just("client_no_context_takeover".to_string()),
        (0u8..20).prop_map(|n| format!("server_max_window_bits={n}")),
        (0u8..20).prop_map(|n| format!("client_max_window_bits=\"{n}\"")),
        Just("client_max_window_bits".to_string()),
        "[a-z_]{1,12}(=[0-9a-z]{1,3})?",
    ]
}

proptest! {
    /// Any accepted offer obeys RFC 7692: each parameter at most once, window values 8..=15,
    /// and the answer never raises the window the client allowed us.
    #[test]
    fn accepted_offers_are_valid(params in proptest::collection::vec(param(), 0..6)) {
        let h = std::iter::once("permessage-deflate".to_string())
            .chain(params.iter().cloned())
            .collect::<Vec<_>>()
            .join("; ");
        let names: Vec<&str> = params.iter().map(|p| p.split('=').next().unwrap_or("")).collect();
        let known = [
            "server_no_context_takeover",
            "client_no_context_takeover",
            "server_max_window_bits",
            "client_max_window_bits",
        ];
        let valid_value = |p: &str| match p.split_once('=') {
            None => !p.starts_with("server_max"),
            Some((n, v)) => {
                let v = v.trim_matches('"');
                n.ends_with("window_bits")
                    && v.parse::<u8>().is_ok_and(|x| (8..=15).contains(&x))
                    && !v.starts_with('0')
            }
        };
        let mut sorted = names.clone();
        sorted.sort_unstable();
        sorted.dedup();
        let expect_ok = names.iter().all(|n| known.contains(n))
            && sorted.len() == names.len()
            && params.iter().all(|p| valid_value(p));
        let got = negotiate([h.as_str()]);
        prop_assert_eq!(got.is_some(), expect_ok, "{}", h);
        if let Some(a) = got {
            prop_assert!((MIN_WINDOW_BITS..=MAX_WINDOW_BITS).contains(&a.server_window_bits));
            let asked = params.iter().find_map(|p| p.strip_prefix("server_max_window_bits="));
            if let Some(n) = asked {
                prop_assert_eq!(a.server_window_bits.to_string(), n);
            }
            prop_assert!(a.response().contains("client_no_context_takeover"));
        }
    }

    /// Arbitrary header text never panics.
    #[test]
    fn arbitrary_headers(h in "\\PC{0,80}") {
        let _ = negotiate([h.as_str()]);
    }
}
