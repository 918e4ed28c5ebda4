//! Client ids in the API's JSON: kefu's 32-digit form, and with `[gatewayworker]` on also
//! GatewayWorker's 20-digit form (accepted, and given in answers), so an id a PHP backend got
//! from GatewayClient works here and one from here works in GatewayClient.

use super::HttpApiError;
use crate::api::Ctx;
use crate::gateway::client_id::{ClientId, ConnId, TEXT_LEN};
use crate::gateway::gw_id::{self, GwIdError, GwIds, GW_TEXT_LEN};
use std::collections::HashMap;

/// Lists longer than this resolve their 20-digit ids through one index per worker instead of
/// one scan of that worker's clients per id.
const SCAN_MAX: usize = 4;

/// How ids are read and written by this node's API.
#[derive(Debug, Clone, Copy, Default)]
pub struct Ids {
    /// GatewayWorker's layout, when `[gatewayworker]` is on.
    pub gw: Option<GwIds>,
}

/// A 20-digit id that names no client here: not online anywhere (incarnation 0 is never
/// given out), so calls answer as for a client that left.
fn nobody() -> ClientId {
    ClientId::new(
        0,
        ConnId {
            slot: u32::MAX,
            gen: u32::MAX,
        },
    )
}

fn malformed(s: &str, gw: bool) -> HttpApiError {
    let forms = if gw {
        "32 lowercase hex digits (kefu) or 20 (GatewayWorker)"
    } else {
        "32 lowercase hex digits"
    };
    HttpApiError::new(
        400,
        "bad_client_id",
        format!("malformed client_id {s:?}: expected {forms}"),
    )
}

impl Ids {
    /// The client `s` names.
    pub(super) fn parse(&self, cx: &Ctx<'_>, s: &str) -> Result<ClientId, HttpApiError> {
        self.parse_with(cx, s, &mut |inc, gen| {
            cx.clients_of_worker(inc).find(|c| c.conn.gen == gen)
        })
    }

    /// Each client of a list (absent: none).
    pub(super) fn parse_list(
        &self,
        cx: &Ctx<'_>,
        v: Option<Vec<String>>,
    ) -> Result<Vec<ClientId>, HttpApiError> {
        let v = v.unwrap_or_default();
        if v.len() <= SCAN_MAX {
            return v.iter().map(|s| self.parse(cx, s)).collect();
        }
        let mut index: HashMap<u64, HashMap<u32, ClientId>> = HashMap::new();
        v.iter()
            .map(|s| {
                self.parse_with(cx, s, &mut |inc, gen| {
                    let by_gen = index.entry(inc).or_insert_with(|| {
                        cx.clients_of_worker(inc).map(|c| (c.conn.gen, c)).collect()
                    });
                    by_gen.get(&gen).copied()
                })
            })
            .collect()
    }

    fn parse_with(
        &self,
        cx: &Ctx<'_>,
        s: &str,
        find: &mut dyn FnMut(u64, u32) -> Option<ClientId>,
    ) -> Result<ClientId, HttpApiError> {
        match (s.len(), self.gw) {
            (TEXT_LEN, _) => ClientId::parse(s).ok_or_else(|| malformed(s, self.gw.is_some())),
            (GW_TEXT_LEN, Some(gw)) => match gw.parse(s) {
                Ok(a) => Ok(cx
                    .worker_inc(a.worker)
                    .and_then(|inc| find(inc, gw_id::gen_of(inc, a.no)))
                    .unwrap_or_else(nobody)),
                // Another gateway host's client, or no inner port: not a client of this node.
                Err(GwIdError::OtherHost | GwIdError::NotAnInnerPort) => Ok(nobody()),
                Err(GwIdError::Malformed) => Err(malformed(s, true)),
            },
            _ => Err(malformed(s, self.gw.is_some())),
        }
    }

    /// The text of `c` in answers: GatewayWorker's form when on and `c` is on this node.
    pub(super) fn text(&self, cx: &Ctx<'_>, c: ClientId) -> String {
        self.gw
            .filter(|_| gw_id::usable(c))
            .and_then(|gw| gw.text(cx.worker_of(c.inc)?, gw_id::conn_no(c)))
            .unwrap_or_else(|| c.to_string())
    }

    /// The texts of a list.
    pub(super) fn texts(&self, cx: &Ctx<'_>, v: Vec<ClientId>) -> Vec<String> {
        v.into_iter().map(|c| self.text(cx, c)).collect()
    }
}
