//! Crash consistency (filled in below).
