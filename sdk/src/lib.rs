//! PX storage: sdk (filled in by its issue).
