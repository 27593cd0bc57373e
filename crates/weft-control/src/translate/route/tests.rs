//! RDS translation tests.
