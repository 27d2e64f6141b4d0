//! What `docket-bench` shares with the tests: the stand-in model provider
//! (`upstream`), which speaks OpenAI's and Anthropic's wire formats,
//! their errors and rate limits included, for the gateway's tests and
//! benchmarks. The `docket-bench` binary (`main.rs`) holds the
//! benchmarks; neither ships in the `docket` binary.

pub mod upstream;
