//! PX storage: node (filled in by its issue).
