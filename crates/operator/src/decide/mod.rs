//! Pure decisions the controllers act on: who may use a Prism admin and who owns a name in
//! it, and the plugin rollout state machine.

pub mod admin;
pub mod rollout;
