//! Shared workerman-chat client logic.
