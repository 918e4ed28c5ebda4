//! Placeholder for the customer-service protocol scenario (protocol not defined yet).

use crate::runner::LoadError;
use crate::{Common, Outcome};
use clap::Args;

/// Options of the `kefu` scenario.
#[derive(Args, Debug)]
pub struct KefuArgs {
    #[command(flatten)]
    common: Common,
}

/// Always fails with "not implemented yet" (exit code 2).
pub fn run(args: &KefuArgs) -> Result<Outcome, LoadError> {
    let _ = &args.common;
    Err(LoadError::NotImplemented)
}
