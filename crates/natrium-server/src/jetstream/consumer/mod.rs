//! JetStream consumers: a pure state machine (`machine`) and the task that drives it
//! (`driver`), plus the consumer API handlers (`api`).

pub mod machine;
