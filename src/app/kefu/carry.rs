//! What the kefu app carries across a reload's hand-over (`App::hand_over` /
//! `App::take_over`): the agents' away timers (else an agent who left just before a deploy
//! keeps its visitors waiting forever), the per-address limit tables (else a reload refills
//! every abuser's bucket and forgets every failed login) and each connection's message
//! bucket. Logins are not here: they live in the sessions, which the gateway moves.

use super::limits::CarriedLimits;
use super::presence::CarriedAway;
use super::shared::{CarriedConn, Shared};
use crate::api::{AppState, ClientId, Ctx};
use serde::{Deserialize, Serialize};

/// The name the state is written under.
const APP: &str = "kefu";
/// The shape of [`Carried`]; bump it when it changes.
const VERSION: u32 = 1;

/// The app's memory, as it crosses.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Carried {
    away: Vec<CarriedAway>,
    limits: CarriedLimits,
    /// By client id (text form): ids stay the same across a hand-over.
    conns: Vec<(String, CarriedConn)>,
}

/// Retiring: the state for the successor.
pub(super) fn hand_over(sh: &Shared, cx: &Ctx<'_>) -> Option<AppState> {
    let now = cx.now();
    let c = Carried {
        away: sh.away.carry(now),
        limits: sh.limits.carry(now),
        conns: sh
            .conns
            .iter()
            .map(|(id, c)| (id.to_string(), c.carry(now)))
            .collect(),
    };
    match AppState::new(APP, VERSION, &c) {
        Ok(s) => Some(s),
        Err(e) => {
            crate::warn!("kefu: state not carried over: {e}");
            None
        }
    }
}

/// Successor, after every connection was adopted: go on where the predecessor stopped.
pub(super) fn take_over(sh: &mut Shared, cx: &mut Ctx<'_>, state: AppState) {
    let c: Carried = match state.read(APP, VERSION) {
        Ok(c) => c,
        Err(e) => {
            crate::warn!("kefu: carried state ignored ({e}); timers and limits start afresh");
            return;
        }
    };
    let now = cx.now();
    sh.limits.restore(c.limits, now);
    let grace = sh.cfg.agent_away_grace;
    sh.away.restore(cx, c.away, grace);
    let burst = sh.cfg.rate_burst;
    for (id, cc) in c.conns {
        // Only connections adopted here: one that failed to move has no entry to restore.
        if let Some(conn) = ClientId::parse(&id).and_then(|id| sh.conns.get_mut(&id)) {
            conn.restore(cc, now, burst);
        }
    }
}
