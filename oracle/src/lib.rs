//! PX storage: oracle (filled in by its issue).
