//! Subject index (in progress).
