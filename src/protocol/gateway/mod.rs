//! GatewayWorker's protocols: the inner binary frames between gateways, BusinessWorkers and
//! GatewayClient (`frame`), and the Register's JSON lines (`register`).

pub mod frame;
pub mod register;
