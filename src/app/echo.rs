//! `echo`: every message goes back to its sender, on every protocol.

use crate::api::{App, ClientId, Ctx, Payload};

/// The echo app (used by the Autobahn suite and the benchmarks).
#[derive(Debug)]
pub struct Echo;

impl App for Echo {
    fn on_message(&mut self, cx: &mut Ctx<'_>, id: ClientId, msg: Payload<'_>) {
        cx.send_to_client(id, msg);
    }
}
