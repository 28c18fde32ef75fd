//! DCE's own client, dce-cli, unmodified, and the `aws` CLI against the operator deployed as
//! users deploy it: the Helm chart, the REST API over HTTPS under `/api` with its sign-in page,
//! all on loopback (see `fixture`). Each scenario checks what the client prints for the
//! operator's answers, read from the client's source (`cmd/`, `pkg/service/`): JSON documents
//! are the client's own structs re-encoded with tabs, messages go to standard error, and every
//! failure is `err:  <the generated client's error>` with exit status 1.
//!
//! Needs `make dce-cli` and `make venv`; skips, saying which is missing, without them (fails in
//! CI). `make bench-cli` runs the ignored benchmark (`bench`).

mod accounts;
mod bench;
mod browser;
mod fixture;
mod leases;
mod refusals;

use dce_e2e::dce_cli::CliOutput;
use serde_json::Value;

/// What a successful command printed as JSON: dce-cli encodes the payload with
/// `json.MarshalIndent(…, "", "\t")` and the command ends with an empty line.
pub fn printed_json(output: &CliOutput) -> Value {
    assert!(output.success(), "{output}");
    let document = output
        .stdout
        .strip_suffix('\n')
        .unwrap_or_else(|| panic!("no closing newline: {output}"));
    let parsed: Value = serde_json::from_str(document)
        .unwrap_or_else(|error| panic!("not JSON ({error}): {output}"));
    if let Some(indented) = document.lines().nth(1) {
        assert!(indented.starts_with('\t'), "not indented by tabs: {output}");
    }
    parsed
}

/// The error a failed command printed: dce-cli logs `err:  <error>` (`log.Fatalln("err: ",
/// err)`) and exits with status 1, printing nothing else.
pub fn printed_error(output: &CliOutput) -> String {
    assert_eq!(output.status.code(), Some(1), "{output}");
    assert_eq!(output.stdout, "", "{output}");
    let error = output.stderr.strip_prefix("err:  ");
    let error = error.unwrap_or_else(|| panic!("not dce-cli's error line: {output}"));
    error.trim_end_matches('\n').to_string()
}

/// The keys of `object`, sorted.
pub fn keys(object: &Value) -> Vec<&str> {
    let fields = object.as_object().into_iter().flatten();
    let mut keys: Vec<&str> = fields.map(|(key, _)| key.as_str()).collect();
    keys.sort_unstable();
    keys
}
