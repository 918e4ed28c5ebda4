//! `broadcast` scenario (in progress).

use crate::runner::LoadError;
use crate::{Common, Outcome};
use clap::Args;

/// Options of the `broadcast` scenario.
#[derive(Args, Debug)]
pub struct BroadcastArgs {
    #[command(flatten)]
    common: Common,
}

/// Runs the scenario.
pub fn run(args: &BroadcastArgs) -> Result<Outcome, LoadError> {
    let _ = &args.common;
    Err(LoadError::NotImplemented)
}
