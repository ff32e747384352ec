//! Solutions to chapter 8.
