//! Who is calling, and which collections they may see.

pub mod jwt;
