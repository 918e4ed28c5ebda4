//! `private` scenario (in progress).

use crate::runner::LoadError;
use crate::{Common, Outcome};
use clap::Args;

/// Options of the `private` scenario.
#[derive(Args, Debug)]
pub struct PrivateArgs {
    #[command(flatten)]
    common: Common,
}

/// Runs the scenario.
pub fn run(args: &PrivateArgs) -> Result<Outcome, LoadError> {
    let _ = &args.common;
    Err(LoadError::NotImplemented)
}
