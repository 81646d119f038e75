//! Writing ORC sections into an object (placeholder; see issue #5).
