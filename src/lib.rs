//! orctool: stack-state validation and ORC unwind table generation for x86-64 kernel
//! objects, a successor of the ORC part of the kernel's objtool.
//!
//! The pipeline, one module per stage:
//! load ([`elf`]) → … → ORC format, ABI detection and dump ([`orc`]).

pub mod actions;
pub mod alloc;
pub mod alt;
pub mod cfg;
pub mod cfi;
pub mod check;
pub mod cli;
pub mod decode;
pub mod edits;
pub mod elf;
pub mod error;
pub mod ids;
pub mod offsets;
pub mod options;
pub mod orc;
pub mod patch;
pub mod report;
pub mod verify;
pub mod write;

pub use error::{Error, Result};
#[cfg(test)]
mod testing;
