//! Integration tests of `dynamo-vclock`, one binary with a module per topic (in `suite/`).

mod suite;
