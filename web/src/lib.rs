pub use kiln_shared;
