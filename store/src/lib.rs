//! PX storage: store (filled in by its issue).
