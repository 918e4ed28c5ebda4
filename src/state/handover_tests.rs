use super::*;
use crate::config::Scheme;
use crate::connection::handover::{InputRecord, ProtoRecord, StateRecord};
use crate::connection::Deflate;
use crate::protocol::websocket::decoder::{DecoderState, DeflateState};
use proptest::prelude::*;
use serde_json::json;

fn c(inc: u64, slot: u32, gen: u32) -> ClientId {
    ClientId::new(inc, ConnId { slot, gen })
}

/// A connection record with every field away from its default.
fn conn(slot: u32) -> ConnRecord {
    ConnRecord {
        slot,
        gen: 0xdead_beef,
        scheme: Scheme::Websocket,
        state: StateRecord::Closing,
        proto: ProtoRecord::Ws {
            state: DecoderState {
                frag_opcode: Some(1),
                assembled: b"h\xc3".to_vec(),
                frame_progress: 3,
                utf8_pending: vec![0xc3],
                deflate: DeflateState::Compressing,
            },
        },
        framing: Some(Scheme::Websocket),
        unread: vec![0x81, 0x85, 1, 2, 3, 4, 0, 1],
        unsent: (0..=255).collect(),
        bytes_read: u64::MAX,
        bytes_written: 1 << 40,
        remote: "[::1]:65535".parse().unwrap(),
        idle_ms: 12,
        deadline_ms: Some(3456),
        input: InputRecord::Resumed,
        app_connected: true,
        requests_served: 7,
        deflate: Deflate::On(9),
        tls: None,
    }
}

/// One record of every kind, in stream order.
fn stream() -> Vec<Record> {
    let mut text = conn(4);
    text.proto = ProtoRecord::Text;
    text.framing = Some(Scheme::Text);
    text.remote = "10.1.2.3:80".parse().unwrap();
    text.deadline_ms = None;
    let mut http = conn(5);
    http.proto = ProtoRecord::Http;
    http.framing = None;
    http.unread.clear();
    http.unsent.clear();
    vec![
        Record::Clients {
            present: vec![(7, vec![1, u64::MAX]), (9, vec![])],
            info: vec![ClientRecord {
                inc: 7,
                slot: 0,
                gen: 1,
                uid: Some("agent-1".into()),
                groups: vec!["room".into(), "房间".into()],
                session: json!({"k": [1, null, {"x": "y"}]})
                    .as_object()
                    .unwrap()
                    .clone(),
            }],
        },
        Record::Links {
            links: vec![LinkRecord {
                inc: 3,
                worker_id: 2,
                unread: vec![1, 2, 3],
                unsent: vec![],
            }],
        },
        Record::Conns {
            conns: vec![conn(3), text, http],
        },
        Record::Update {
            conns: vec![conn(3)],
        },
        Record::Gone {
            slots: vec![4, u32::MAX],
        },
        Record::App {
            state: json!({"app": "kefu", "version": 1, "data": {"away": [1, 2]}}),
        },
        Record::Changed {
            gone: vec![(7, vec![3])],
            present: vec![(9, vec![1 << 32 | 2])],
            info: vec![ClientRecord {
                inc: 9,
                slot: 1,
                gen: 2,
                uid: None,
                groups: vec!["g".into()],
                session: Map::new(),
            }],
        },
        Record::Reset,
        Record::Synced,
        Record::Done,
    ]
}

fn wire(recs: &[Record]) -> Vec<u8> {
    let mut w = Vec::new();
    for r in recs {
        encode(r, &mut w);
    }
    w
}

#[test]
fn every_record_kind_round_trips_and_splits_anywhere() {
    let recs = stream();
    let w = wire(&recs);
    let mut at = 0;
    let mut back = Vec::new();
    while let Some((r, n)) = decode(&w[at..]).unwrap() {
        for cut in at..at + n {
            assert!(decode(&w[at..cut]).unwrap().is_none());
        }
        back.push(r);
        at += n;
    }
    assert_eq!(at, w.len());
    assert_eq!(back, recs);
    assert_eq!(back[1].fds(), 1);
    assert_eq!(back[2].fds(), 3);
}

#[test]
fn a_record_cut_short_or_garbled_is_a_typed_error() {
    for r in stream() {
        let mut w = Vec::new();
        encode(&r, &mut w);
        let body = &w[record::HEAD..];
        // The frame is whole but its body is cut: every cut fails, none panics.
        for cut in 0..body.len() {
            let mut f = (cut as u32).to_le_bytes().to_vec();
            f.extend_from_slice(&body[..cut]);
            match decode(&f) {
                Err(StreamError::Frame(RecordError::Binary(_))) => {}
                other => panic!("cut at {cut} of {r:?}: {other:?}"),
            }
        }
    }
    // A session that is not JSON, an unknown record kind, a frame over the limit.
    let mut w = Vec::new();
    encode(&Record::Done, &mut w);
    w[record::HEAD] = 200;
    assert!(matches!(
        decode(&w),
        Err(StreamError::Frame(RecordError::Binary(_)))
    ));
    let bad_app = [3, 0, 0, 0, 5, 1, b'{'];
    assert!(matches!(
        decode(&bad_app),
        Err(StreamError::Frame(RecordError::Binary(_)))
    ));
    let huge = ((MAX_FRAME + 1) as u32).to_le_bytes();
    assert!(matches!(
        decode(&huge),
        Err(StreamError::Frame(RecordError::TooLarge(_)))
    ));
}

#[test]
fn openings_keep_the_json_shape_every_build_reads() {
    // Format 2 wrote its first record with this shape: a build of any format reads a refusal.
    let mut w = Vec::new();
    encode_opening(
        &Opening::Refused {
            reason: "no".into(),
        },
        &mut w,
    );
    assert_eq!(&w[record::HEAD..], br#"{"type":"refused","reason":"no"}"#);
    let mut w = Vec::new();
    encode_opening(&Hello { format: 3 }, &mut w);
    assert_eq!(&w[record::HEAD..], br#"{"format":3}"#);
    for cut in 0..w.len() {
        assert!(decode_opening::<Hello>(&w[..cut]).unwrap().is_none());
    }
    assert_eq!(
        decode_opening::<Hello>(&w).unwrap(),
        Some((Hello { format: 3 }, w.len()))
    );
    let begin = br#"{"type":"begin","format":2,"inc":5,"next_gen":6,"conns":1,"links":0}"#;
    let mut f = (begin.len() as u32).to_le_bytes().to_vec();
    f.extend_from_slice(begin);
    let (o, _) = decode_opening::<Opening>(&f).unwrap().unwrap();
    assert_eq!(
        o,
        Opening::Begin {
            format: 2,
            inc: 5,
            next_gen: 6,
            conns: 1,
            links: 0
        }
    );
    let mut junk = Vec::new();
    encode_opening(&"not a hello", &mut junk);
    assert!(matches!(
        decode_opening::<Hello>(&junk),
        Err(StreamError::Frame(RecordError::Json(_)))
    ));
}

#[test]
fn a_registry_crosses_in_chunks_unchanged() {
    let mut r = Registry::default();
    for inc in [7, 9] {
        for s in 0..10 {
            r.add(c(inc, s, s * 3));
        }
    }
    r.bind(c(7, 1, 3), "u");
    r.join(c(7, 1, 3), "g");
    r.join(c(9, 2, 6), "g");
    r.set_session(
        c(9, 2, 6),
        json!({"k": [1, 2]}).as_object().unwrap().clone(),
    );
    let recs = registry_records(&r, 3);
    assert_eq!(recs.len(), 7);
    let w = wire(&recs);
    let mut back = Registry::default();
    let mut at = 0;
    while let Some((rec, n)) = decode(&w[at..]).unwrap() {
        at += n;
        match rec {
            Record::Clients { present, info } => import_clients(&mut back, present, info),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(at, w.len());
    assert_eq!(back.client_list(), r.client_list());
    assert_eq!(back.group_list("g"), r.group_list("g"));
    assert_eq!(back.uid_clients("u"), vec![c(7, 1, 3)]);
    assert_eq!(back.get(c(9, 2, 6)), r.get(c(9, 2, 6)));
    assert_eq!(back.info_count(), 2);
}

proptest! {
    /// Arbitrary bytes after a frame length: a record, a request for more, or a typed error.
    #[test]
    fn arbitrary_bytes_never_panic(body in proptest::collection::vec(any::<u8>(), 0..600)) {
        let mut f = (body.len() as u32).to_le_bytes().to_vec();
        f.extend_from_slice(&body);
        if let Ok(Some((r, n))) = decode(&f) {
            // Whatever decodes took the whole frame and survives another round trip.
            prop_assert_eq!(n, f.len());
            let again = wire(std::slice::from_ref(&r));
            let back = decode(&again).unwrap().map(|(r, _)| r);
            prop_assert_eq!(back, Some(r));
        }
    }

    /// A valid stream with one byte changed or cut anywhere decodes or fails cleanly.
    #[test]
    fn damaged_streams_fail_cleanly(at in any::<prop::sample::Index>(), byte in any::<u8>(), cut in any::<bool>()) {
        let mut w = wire(&stream());
        let i = at.index(w.len());
        if cut {
            w.truncate(i);
        } else {
            w[i] = byte;
        }
        let mut pos = 0;
        while pos < w.len() {
            match decode(&w[pos..]) {
                Ok(Some((_, n))) => pos += n,
                Ok(None) | Err(_) => break,
            }
        }
    }
}

/// The committed seeds of the `handover_state` fuzz target (2 bytes of body length, a binary
/// record body, then a stream) are records of this format.
#[test]
fn the_fuzz_seeds_are_records_of_this_format() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/fuzz/seeds/handover_state/");
    let body = |name: &str| -> Vec<u8> {
        let seed = std::fs::read(format!("{dir}{name}")).unwrap();
        let n = usize::from(u16::from_le_bytes([seed[0], seed[1]]));
        let mut f = (n as u32).to_le_bytes().to_vec();
        f.extend_from_slice(&seed[2..2 + n]);
        f
    };
    for name in ["conn_record", "conn_record_text"] {
        let f = body(name);
        let (r, used) = record::decode::<ConnRecord>(&f, 1 << 20).unwrap().unwrap();
        assert_eq!((used, r.slot, r.gen), (f.len(), 3, 7), "{name}");
    }
    for name in [
        "fresh_text",
        "continue_text",
        "continue_binary",
        "bad_opcode",
        "bad_utf8",
        "progress_past_input",
    ] {
        let f = body(name);
        let (_, used) = record::decode::<DecoderState>(&f, 1 << 20)
            .unwrap()
            .unwrap();
        assert_eq!(used, f.len(), "{name}");
    }
}

/// A replica copied ahead in chunks while it keeps changing, then the changes recorded since
/// the copy began: the successor ends with the replica as it is at the commit, whatever
/// changed before or after its client's chunk went.
#[test]
fn a_registry_copied_ahead_and_then_its_changes_ends_equal() {
    let mut r = Registry::default();
    for s in 0..40 {
        r.add(c(7, s, 1));
    }
    r.bind(c(7, 1, 1), "u1");
    r.join(c(7, 2, 1), "g");
    r.set_session(c(7, 3, 1), json!({"a": 1}).as_object().unwrap().clone());
    r.bind(c(7, 4, 1), "gone-later");
    r.track(1000);
    let mut ids: Vec<ClientId> = r.clients().collect();
    ids.sort();
    let mut back = Registry::default();
    let apply = |back: &mut Registry, rec: Record| match rec {
        Record::Clients { present, info } => import_clients(back, present, info),
        Record::Changed {
            gone,
            present,
            info,
        } => apply_changed(back, gone, present, info),
        Record::Reset => *back = Registry::default(),
        other => panic!("unexpected {other:?}"),
    };
    // The first half goes, then changes touch clients on both sides of the cut, new and
    // departed ones included, then the second half goes.
    let (first, second) = ids.split_at(20);
    let rec = clients_record(&r, first);
    apply(&mut back, decode(&wire(&[rec])).unwrap().unwrap().0);
    r.bind(c(7, 1, 1), "u1-new");
    r.leave(c(7, 2, 1), "g");
    r.join(c(7, 2, 1), "h");
    r.set_session(c(7, 3, 1), Map::new());
    r.remove(c(7, 4, 1));
    r.join(c(7, 30, 1), "late");
    r.remove(c(7, 31, 1));
    r.add(c(7, 50, 2));
    r.bind(c(7, 50, 2), "newcomer");
    r.add(c(9, 0, 0));
    r.drop_worker(9);
    r.add(c(8, 5, 5));
    apply(&mut back, clients_record(&r, second));
    let changed = match r.take_changes() {
        crate::gateway::changes::Changes::On { clients, .. } => clients,
        other => panic!("{other:?}"),
    };
    assert!(changed.contains(&c(7, 4, 1)) && changed.contains(&c(9, 0, 0)));
    assert!(
        !changed.contains(&c(7, 10, 1)),
        "an unchanged client is not sent again"
    );
    for rec in changed_records(&r, changed, 3) {
        apply(&mut back, decode(&wire(&[rec])).unwrap().unwrap().0);
    }
    assert_eq!(back.client_list(), r.client_list());
    for id in r.client_list() {
        assert_eq!(back.get(id), r.get(id), "{id}");
    }
    assert_eq!(back.uid_list(), r.uid_list());
    assert_eq!(back.group_ids(), r.group_ids());
    assert_eq!(back.group_list("h"), vec![c(7, 2, 1)]);
    assert_eq!(back.uid_clients("newcomer"), vec![c(7, 50, 2)]);
    assert!(back.get(c(7, 3, 1)).unwrap().is_empty());
    assert_eq!(back.info_count(), r.info_count());
    // Nothing is recorded once the hand-over took the changes.
    r.add(c(7, 60, 1));
    assert!(matches!(
        r.take_changes(),
        crate::gateway::changes::Changes::Off
    ));
}

/// Past its cap the recording gives up; the commit then starts the replica over.
#[test]
fn too_many_changes_start_the_replica_over() {
    let mut r = Registry::default();
    r.add(c(7, 0, 0));
    r.track(4);
    for s in 1..10 {
        r.add(c(7, s, 0));
    }
    assert!(matches!(
        r.take_changes(),
        crate::gateway::changes::Changes::Overflowed
    ));
    let mut back = Registry::default();
    import_clients(&mut back, vec![(7, vec![0, 1 << 32])], vec![]);
    let mut recs = vec![Record::Reset];
    recs.extend(registry_records(&r, 4));
    for rec in recs {
        match decode(&wire(&[rec])).unwrap().unwrap().0 {
            Record::Reset => back = Registry::default(),
            Record::Clients { present, info } => import_clients(&mut back, present, info),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(back.client_list(), r.client_list());
}

#[test]
fn a_reply_round_trips_and_garbage_is_a_typed_error() {
    let mut w = Vec::new();
    encode_reply(Reply::CaughtUp, &mut w);
    for cut in 0..w.len() {
        assert!(decode_reply(&w[..cut]).unwrap().is_none());
    }
    assert_eq!(decode_reply(&w).unwrap(), Some((Reply::CaughtUp, w.len())));
    assert!(decode_reply(&[1, 0, 0, 0, 9]).is_err());
    assert!(decode_reply(&[255, 255, 0, 0]).is_err());
}
