//! The Roost server: configuration, the ordered module list, and starting
//! the listeners. `main.rs` is the command line on top of this.

pub mod bookmark_rooms;
pub mod config;
pub mod counters_log;
pub mod listen;
pub mod migrate;
pub mod modules;
pub mod start;
pub mod xeps;

pub use config::Config;
pub use start::{start, Running};
