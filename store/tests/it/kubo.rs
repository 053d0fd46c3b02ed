//! Differential conformance: the same requests to px-store and to a real Kubo 0.43.1 (built
//! from its pinned Go module by `tools/kubo/build.sh`, started by `tools/kubo/start.sh`), and
//! their answers compared: status, content type, streaming framing, JSON field names and types,
//! values (CIDs, sizes, paths, error bodies), and the IPNS records each one publishes.
//!
//! Every RPC command px-node and px-oracle send is covered, as they send it, plus malformed
//! requests. Each difference found is a failure unless it is listed in [`DOCUMENTED`] and
//! described under the same id in `store/README.md` ("Where px-store differs from Kubo"); a
//! documented difference that no longer shows up fails too, so the list stays true.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::time::{Duration, SystemTime};

use px_store::ipns::IpnsEntry;
use px_store::ipns::time::parse_rfc3339;
use serde_json::Value;

use crate::common::{config, content, spawn_with};
use crate::kubod::Kubo;

/// Differences from Kubo that px-store makes on purpose: (request, aspect, README id). `*`
/// stands for every request, or for every aspect of one request.
const DOCUMENTED: &[(&str, &str, &str)] = &[
    ("*", "transfer-encoding", "whole-answers"),
    ("*", "trailer", "whole-answers"),
    ("id", "body", "id"),
    ("routing/put garbage", "*", "routing-put-verifies"),
    ("add over the request limit", "*", "request-limit"),
    ("key/gen rsa", "*", "ed25519-only"),
    ("name/publish bad path", "body", "cid-wording"),
    ("routing/get bad key", "body", "cid-wording"),
];

/// The one request whose answer may be a closed connection (see `request-limit`).
const CUT_OFF: &str = "add over the request limit";

/// Whether the documented `(request, aspect)` covers `d`.
fn covers(request: &str, aspect: &str, d: &Diff) -> bool {
    (request == "*" || request == d.request) && (aspect == "*" || aspect == d.aspect)
}

/// What an answer looked like on the wire.
#[derive(Debug)]
struct Answer {
    status: u16,
    content_type: String,
    chunked: bool,
    /// `X-Chunked-Output` (Kubo's marker of a streamed command).
    chunked_output: bool,
    trailer: Option<String>,
    body: Vec<u8>,
}

/// How the bodies of an answer pair are compared.
#[derive(Clone, Copy, Debug)]
enum Body {
    /// Bytes, or JSON values, equal.
    Exact,
    /// JSON with the same field names and value types; values may differ (keys, peer ids).
    Shape,
    /// As `Shape`, and these top-level fields equal.
    ShapeAnd(&'static [&'static str]),
    /// An IPNS record (raw, or base64 in a routing answer's `Extra`): the same fields, value,
    /// validity type, TTL, sequence and lifetime (within a minute); signatures differ (keys).
    Record,
}

/// One request, sent to both. `{name}` in the path is replaced by each daemon's own variable.
struct Req {
    name: &'static str,
    path: String,
    get: bool,
    body: Option<(String, Vec<u8>)>,
    cmp: Body,
}

fn post(name: &'static str, path: &str, cmp: Body) -> Req {
    Req {
        name,
        path: path.to_string(),
        get: false,
        body: None,
        cmp,
    }
}

/// One multipart part: field name, file name, content type, bytes.
type Part<'a> = (&'a str, Option<&'a str>, Option<&'a str>, &'a [u8]);

/// A multipart body of `parts`.
fn multipart(parts: &[Part<'_>]) -> (String, Vec<u8>) {
    let boundary = "conformanceBoundary7d1c";
    let mut body = Vec::new();
    for (name, file, ctype, bytes) in parts {
        body.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
        let mut disposition = format!("Content-Disposition: form-data; name=\"{name}\"");
        if let Some(f) = file {
            disposition.push_str(&format!("; filename=\"{f}\""));
        }
        body.extend_from_slice(disposition.as_bytes());
        body.extend_from_slice(b"\r\n");
        if let Some(t) = ctype {
            body.extend_from_slice(format!("Content-Type: {t}\r\n").as_bytes());
        }
        body.extend_from_slice(b"\r\n");
        body.extend_from_slice(bytes);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

fn with_body(mut r: Req, body: (String, Vec<u8>)) -> Req {
    r.body = Some(body);
    r
}

const OCTETS: Option<&str> = Some("application/octet-stream");

/// One side of the comparison: a base URL and the variables its answers defined.
struct Side {
    api: String,
    vars: HashMap<String, String>,
}

impl Side {
    fn path(&self, template: &str) -> String {
        let mut path = template.to_string();
        for (k, v) in &self.vars {
            path = path.replace(&format!("{{{k}}}"), v);
        }
        path
    }

    async fn send(&self, http: &reqwest::Client, req: &Req) -> Answer {
        let url = format!("{}/api/v0/{}", self.api, self.path(&req.path));
        let mut rb = if req.get {
            http.get(url)
        } else {
            http.post(url)
        };
        if let Some((ctype, bytes)) = &req.body {
            rb = rb
                .header(reqwest::header::CONTENT_TYPE, ctype)
                .body(bytes.clone());
        }
        let res = tokio::time::timeout(Duration::from_secs(30), rb.send())
            .await
            .unwrap_or_else(|_| panic!("{}: no answer in 30 s", req.name));
        let res = match res {
            Ok(res) => res,
            // px-store refuses a body over its limit before reading it and closes the
            // connection; a client still sending may see the connection go before the answer.
            Err(e) if req.name == CUT_OFF => {
                return Answer {
                    status: 0,
                    content_type: String::new(),
                    chunked: false,
                    chunked_output: false,
                    trailer: None,
                    body: format!("connection closed: {e}").into_bytes(),
                };
            }
            Err(e) => panic!("{}: {e}", req.name),
        };
        let header = |n: &str| {
            res.headers()
                .get(n)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let status = res.status().as_u16();
        let content_type = header("content-type").unwrap_or_default();
        let chunked = header("transfer-encoding").is_some_and(|v| v.contains("chunked"));
        let chunked_output = header("x-chunked-output").is_some();
        let trailer = header("trailer");
        let body = res.bytes().await.unwrap().to_vec();
        Answer {
            status,
            content_type,
            chunked,
            chunked_output,
            trailer,
            body,
        }
    }
}

/// A difference: request, aspect, Kubo's side, px-store's side.
#[derive(Debug)]
struct Diff {
    request: &'static str,
    aspect: &'static str,
    kubo: String,
    store: String,
}

/// The JSON lines of a body, if it is JSON (one value or NDJSON).
fn json_lines(body: &[u8]) -> Option<Vec<Value>> {
    let text = std::str::from_utf8(body).ok()?;
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    if lines.is_empty() {
        return None;
    }
    lines.iter().map(|l| serde_json::from_str(l).ok()).collect()
}

/// Field names and value types, recursively (arrays: their length and each element's shape).
fn shape(v: &Value) -> Value {
    match v {
        Value::Null => "null".into(),
        Value::Bool(_) => "bool".into(),
        Value::Number(_) => "number".into(),
        Value::String(_) => "string".into(),
        Value::Array(a) => Value::Array(a.iter().map(shape).collect()),
        Value::Object(o) => Value::Object(o.iter().map(|(k, v)| (k.clone(), shape(v))).collect()),
    }
}

/// The properties of an IPNS record both daemons should agree on.
fn record_summary(raw: &[u8]) -> String {
    let Ok(e) = IpnsEntry::decode(raw) else {
        return format!("not an IPNS record ({} bytes)", raw.len());
    };
    let lifetime = e
        .validity
        .as_deref()
        .and_then(|v| std::str::from_utf8(v).ok())
        .and_then(parse_rfc3339)
        .and_then(|eol| eol.duration_since(SystemTime::now()).ok())
        .map(|d| (d.as_secs() + 30) / 60);
    let present = |f: &Option<Vec<u8>>| f.as_ref().map(Vec::len);
    format!(
        "value={:?} validityType={:?} lifetime_min={lifetime:?} sequence={:?} ttl={:?} \
         signatureV1={:?} signatureV2={:?} pubKey={:?} data={}",
        e.value.as_deref().map(String::from_utf8_lossy),
        e.validity_type,
        e.sequence,
        e.ttl,
        present(&e.signature_v1),
        present(&e.signature_v2),
        present(&e.pub_key),
        e.data.is_some(),
    )
}

/// The record in an answer: the body itself, or the base64 `Extra` of a routing event.
fn record_of(a: &Answer) -> Option<Vec<u8>> {
    use base64::Engine as _;
    if a.content_type.starts_with("application/json") {
        let line = json_lines(&a.body)?.pop()?;
        let extra = line.get("Extra")?.as_str()?;
        return base64::engine::general_purpose::STANDARD.decode(extra).ok();
    }
    Some(a.body.clone())
}

fn compare(req: &Req, kubo: &Answer, store: &Answer, diffs: &mut Vec<Diff>) {
    let mut diff = |aspect: &'static str, k: String, s: String| {
        if k != s {
            diffs.push(Diff {
                request: req.name,
                aspect,
                kubo: k,
                store: s,
            });
        }
    };
    diff("status", kubo.status.to_string(), store.status.to_string());
    diff(
        "content-type",
        kubo.content_type.clone(),
        store.content_type.clone(),
    );
    diff(
        "framing",
        format!("X-Chunked-Output: {}", kubo.chunked_output),
        format!("X-Chunked-Output: {}", store.chunked_output),
    );
    diff(
        "transfer-encoding",
        format!("chunked: {}", kubo.chunked),
        format!("chunked: {}", store.chunked),
    );
    diff(
        "trailer",
        format!("{:?}", kubo.trailer),
        format!("{:?}", store.trailer),
    );
    let text = |b: &[u8]| {
        String::from_utf8_lossy(b)
            .chars()
            .take(300)
            .collect::<String>()
    };
    match (req.cmp, json_lines(&kubo.body), json_lines(&store.body)) {
        (Body::Record, _, _) => {
            let k = record_of(kubo).map(|r| record_summary(&r));
            let s = record_of(store).map(|r| record_summary(&r));
            diff("record", format!("{k:?}"), format!("{s:?}"));
            if let (Some(k), Some(s)) = (json_lines(&kubo.body), json_lines(&store.body)) {
                diff("body", shape_of(&k), shape_of(&s));
            }
        }
        (Body::Exact, Some(k), Some(s)) => diff("body", json_text(&k), json_text(&s)),
        (Body::Shape, Some(k), Some(s)) => diff("body", shape_of(&k), shape_of(&s)),
        (Body::ShapeAnd(fields), Some(k), Some(s)) => {
            diff("body", shape_of(&k), shape_of(&s));
            let pick = |lines: &[Value]| {
                lines
                    .iter()
                    .map(|l| {
                        fields
                            .iter()
                            .map(|f| format!("{f}={}", l.get(*f).cloned().unwrap_or_default()))
                            .collect::<Vec<_>>()
                            .join(" ")
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            };
            diff("body", pick(&k), pick(&s));
        }
        _ => diff("body", text(&kubo.body), text(&store.body)),
    }
}

fn json_text(lines: &[Value]) -> String {
    lines
        .iter()
        .map(Value::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

fn shape_of(lines: &[Value]) -> String {
    lines
        .iter()
        .map(|l| shape(l).to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

/// Sends `reqs` to both sides in order; `learn` runs on each side's answer to define
/// variables for later requests.
async fn run(
    http: &reqwest::Client,
    kubo: &mut Side,
    store: &mut Side,
    reqs: Vec<Req>,
    diffs: &mut Vec<Diff>,
    learn: impl Fn(&str, &Answer, &mut HashMap<String, String>),
) {
    for req in reqs {
        let k = kubo.send(http, &req).await;
        let s = store.send(http, &req).await;
        learn(req.name, &k, &mut kubo.vars);
        learn(req.name, &s, &mut store.vars);
        compare(&req, &k, &s, diffs);
    }
}

/// Checks the differences against [`DOCUMENTED`] and the README.
fn judge(diffs: &[Diff]) {
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md"))
        .expect("store/README.md");
    let section = readme
        .split("## Where px-store differs from Kubo")
        .nth(1)
        .expect("store/README.md has a section \"Where px-store differs from Kubo\"");
    let mut failures = Vec::new();
    for (request, aspect, id) in DOCUMENTED {
        if !section.contains(&format!("`{id}`")) {
            failures.push(format!("README does not describe `{id}`"));
        }
        let seen = diffs.iter().any(|d| covers(request, aspect, d));
        if !seen {
            failures.push(format!(
                "documented difference ({request}, {aspect}) no longer occurs: drop it"
            ));
        }
    }
    let mut by_request: BTreeMap<&str, Vec<&Diff>> = BTreeMap::new();
    for d in diffs {
        let documented = DOCUMENTED.iter().any(|(r, a, _)| covers(r, a, d));
        if !documented {
            by_request.entry(d.request).or_default().push(d);
        }
    }
    for (request, ds) in by_request {
        for d in ds {
            failures.push(format!(
                "{request}: {} differs\n    kubo:  {}\n    store: {}",
                d.aspect, d.kubo, d.store
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "px-store differs from Kubo 0.43.1 ({} problems):\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// Remembers what later requests refer to: key ids and the records to put back.
fn learn(request: &str, a: &Answer, vars: &mut HashMap<String, String>) {
    let Some(line) = json_lines(&a.body).and_then(|mut l| l.pop()) else {
        return;
    };
    let s = |k: &str| line.get(k).and_then(Value::as_str).map(str::to_string);
    match request {
        "add (node upload)" => {
            vars.insert("small".into(), s("Hash").unwrap_or_default());
        }
        "add (node upload, 3 chunks)" => {
            vars.insert("big".into(), s("Hash").unwrap_or_default());
        }
        "key/gen" => {
            vars.insert("k1".into(), s("Id").unwrap_or_default());
        }
        "key/gen unpublished" => {
            vars.insert("k2".into(), s("Id").unwrap_or_default());
        }
        _ => {}
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn px_store_answers_like_kubo() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    // The node's uploads go up to 10 GiB; a small limit here to see the refusal.
    cfg.max_request_bytes = 8 << 20;
    cfg.sync_writes = false;
    let (kubo, offline, store) = tokio::join!(
        Kubo::start("dht"),
        Kubo::start("offline"),
        spawn_with(cfg, None)
    );
    let http = reqwest::Client::new();
    let mut k = Side {
        api: kubo.api.clone(),
        vars: HashMap::new(),
    };
    let mut s = Side {
        api: store.handle.api_url(),
        vars: HashMap::new(),
    };
    let mut diffs = Vec::new();

    let small = b"hello px, small\n".to_vec();
    let big = content(700_000, 7);
    let node_add = "add?pin=true&cid-version=0&raw-leaves=false&chunker=size-262144&progress=false";
    let index_add = "add?pin=false&cid-version=0&progress=false";

    let reqs = vec![
        post("version", "version", Body::Shape),
        post("id", "id", Body::Shape),
        // The node's upload add, a small file and one of three chunks.
        with_body(
            post("add (node upload)", node_add, Body::Exact),
            multipart(&[("file", Some("file"), OCTETS, &small)]),
        ),
        with_body(
            post("add (node upload, 3 chunks)", node_add, Body::Exact),
            multipart(&[("file", Some("file"), OCTETS, &big)]),
        ),
        // The node's index objects: several parts, digit names, with a Content-Type.
        with_body(
            post("add (index objects)", index_add, Body::Exact),
            multipart(&[
                ("file", Some("0"), OCTETS, b"{\"index\":0}"),
                ("file", Some("1"), OCTETS, b"{\"index\":1}"),
            ]),
        ),
        with_body(
            post("add (parts without a type)", index_add, Body::Exact),
            multipart(&[
                ("file", Some("0"), None, b"{\"index\":2}"),
                ("file", Some("1"), None, b"{\"index\":3}"),
            ]),
        ),
        with_body(
            post(
                "add (part without a file name)",
                "add?pin=false",
                Body::Exact,
            ),
            multipart(&[("path", None, OCTETS, b"no file name")]),
        ),
        with_body(
            post(
                "add cid-version=1",
                "add?cid-version=1&pin=false",
                Body::Exact,
            ),
            multipart(&[("file", Some("v1"), OCTETS, &big)]),
        ),
        post("add without a body", "add?pin=true", Body::Exact),
        with_body(
            post("add cid-version=7", "add?cid-version=7", Body::Exact),
            multipart(&[("file", Some("file"), OCTETS, &small)]),
        ),
        with_body(
            post(CUT_OFF, "add?pin=false", Body::Exact),
            multipart(&[("file", Some("file"), OCTETS, &content(9 << 20, 9))]),
        ),
        // Pins, as the node batches them.
        post(
            "pin/add two args",
            "pin/add?arg={big}&arg={small}",
            Body::Exact,
        ),
        post("pin/ls pinned", "pin/ls?arg={small}", Body::Exact),
        post(
            "pin/ls type=recursive",
            "pin/ls?type=recursive",
            Body::Exact,
        ),
        post(
            "pin/ls not pinned",
            "pin/ls?arg=QmbFMke1KXqnYyBBWxB74N4c5SBnJMVAiMNRcGu6x1AwQH",
            Body::Exact,
        ),
        post("pin/rm", "pin/rm?arg={big}", Body::Exact),
        post("pin/rm not pinned", "pin/rm?arg={big}", Body::Exact),
        post("pin/add missing arg", "pin/add", Body::Exact),
        post("pin/add bad CID", "pin/add?arg=notacid", Body::Exact),
        post("pin/rm missing arg", "pin/rm", Body::Exact),
        post("pin/ls bad CID", "pin/ls?arg=notacid", Body::Exact),
        // Reads: the node's download and the oracle's bounded cat.
        post("cat", "cat?arg=/ipfs/{small}", Body::Exact),
        post(
            "cat offset+length",
            "cat?arg={small}&offset=2&length=3",
            Body::Exact,
        ),
        post(
            "cat across a chunk boundary",
            "cat?arg={big}&offset=262140&length=8",
            Body::Exact,
        ),
        post(
            "cat length over the size (oracle's limit + 1)",
            "cat?arg={small}&length=65537",
            Body::Exact,
        ),
        post("cat length=0", "cat?arg={small}&length=0", Body::Exact),
        post(
            "cat offset past the end",
            "cat?arg={small}&offset=100",
            Body::Exact,
        ),
        post(
            "cat negative offset",
            "cat?arg={small}&offset=-1",
            Body::Exact,
        ),
        post("cat missing arg", "cat", Body::Exact),
        post("cat bad CID", "cat?arg=notacid", Body::Exact),
        post("block/stat", "block/stat?arg={small}", Body::Exact),
        post("block/stat missing arg", "block/stat", Body::Exact),
        post("block/stat bad CID", "block/stat?arg=notacid", Body::Exact),
        // Keys and names: the node's mint and every update.
        post(
            "key/gen",
            "key/gen?arg=k1&type=ed25519",
            Body::ShapeAnd(&["Name"]),
        ),
        post(
            "key/gen unpublished",
            "key/gen?arg=k2&type=ed25519",
            Body::ShapeAnd(&["Name"]),
        ),
        post(
            "key/gen duplicate",
            "key/gen?arg=k1&type=ed25519",
            Body::Exact,
        ),
        post("key/gen missing arg", "key/gen?type=ed25519", Body::Exact),
        post("key/gen bad type", "key/gen?arg=k3&type=nope", Body::Exact),
        post(
            "key/gen size=0",
            "key/gen?arg=k4&type=ed25519&size=0",
            Body::Exact,
        ),
        post("key/list", "key/list", Body::Shape),
        post("key/gen rsa", "key/gen?arg=k5&type=rsa", Body::Shape),
        post(
            "name/publish",
            "name/publish?arg=/ipfs/{small}&key=k1&lifetime=86400s&allow-offline=true",
            Body::ShapeAnd(&["Value"]),
        ),
        post("routing/get", "routing/get?arg=/ipns/{k1}", Body::Record),
        post(
            "routing/get encoding=text",
            "routing/get?arg=/ipns/{k1}&encoding=text",
            Body::Record,
        ),
        post(
            "name/resolve",
            "name/resolve?arg=/ipns/{k1}&recursive=false",
            Body::Exact,
        ),
        post(
            "name/publish same value again",
            "name/publish?arg=/ipfs/{small}&key=k1&lifetime=86400s&allow-offline=true",
            Body::ShapeAnd(&["Value"]),
        ),
        post(
            "routing/get after the same value",
            "routing/get?arg=/ipns/{k1}",
            Body::Record,
        ),
        post(
            "name/publish a new value",
            "name/publish?arg=/ipfs/{big}&key=k1&lifetime=3600s&allow-offline=true",
            Body::ShapeAnd(&["Value"]),
        ),
        post(
            "routing/get after a new value",
            "routing/get?arg=/ipns/{k1}",
            Body::Record,
        ),
        post(
            "name/publish default lifetime",
            "name/publish?arg=/ipfs/{small}&key=k1&allow-offline=true",
            Body::ShapeAnd(&["Value"]),
        ),
        post(
            "routing/get after the default lifetime",
            "routing/get?arg=/ipns/{k1}",
            Body::Record,
        ),
        post(
            "name/publish unknown key",
            "name/publish?arg=/ipfs/{small}&key=nokey&allow-offline=true",
            Body::Exact,
        ),
        post(
            "name/publish bad path",
            "name/publish?arg=/ipfs/notacid&key=k1&allow-offline=true",
            Body::Exact,
        ),
        post(
            "name/publish missing arg",
            "name/publish?key=k1&allow-offline=true",
            Body::Exact,
        ),
        post(
            "name/resolve never published",
            "name/resolve?arg=/ipns/{k2}",
            Body::Exact,
        ),
        post(
            "routing/get never published",
            "routing/get?arg=/ipns/{k2}",
            Body::Exact,
        ),
        post(
            "routing/get bad key",
            "routing/get?arg=/ipns/notakey",
            Body::Exact,
        ),
        post("routing/get missing arg", "routing/get", Body::Exact),
        with_body(
            post(
                "routing/put garbage",
                "routing/put?arg=/ipns/{k2}&allow-offline=true",
                Body::Shape,
            ),
            multipart(&[("file", Some("rec"), OCTETS, b"garbage")]),
        ),
        post("unknown command", "no/such/command", Body::Exact),
        Req {
            get: true,
            ..post("GET instead of POST", "version", Body::Exact)
        },
    ];
    run(&http, &mut k, &mut s, reqs, &mut diffs, learn).await;

    // routing/put of a daemon's own valid record: each side puts back what it serves.
    for side in [&mut k, &mut s] {
        let raw = http
            .post(format!(
                "{}/api/v0/{}",
                side.api,
                side.path("routing/get?arg=/ipns/{k1}&encoding=text")
            ))
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        side.vars.insert("record".into(), raw.len().to_string());
        let (ctype, body) = multipart(&[("file", Some("rec"), OCTETS, &raw)]);
        let res = http
            .post(format!(
                "{}/api/v0/{}",
                side.api,
                side.path("routing/put?arg=/ipns/{k1}")
            ))
            .header(reqwest::header::CONTENT_TYPE, ctype)
            .body(body)
            .send()
            .await
            .unwrap();
        let status = res.status().as_u16();
        let v: Value = serde_json::from_slice(&res.bytes().await.unwrap()).unwrap();
        assert_eq!(
            status, 200,
            "{}: routing/put of its own record: {v}",
            side.api
        );
        assert_eq!(
            (&v["Type"], &v["Extra"], &v["Responses"]),
            (&Value::from(5), &Value::from(""), &Value::Null),
            "{v}"
        );
        assert!(
            v["ID"]
                .as_str()
                .is_some_and(|id| id.starts_with("12D3KooW"))
        );
    }

    // Absent blocks: an offline Kubo answers at once (an online one without peers waits for
    // providers, see the README); px-store answers as the offline Kubo.
    let mut o = Side {
        api: offline.api.clone(),
        vars: HashMap::new(),
    };
    let absent = "QmNLei78zWmzUdbeRB3CiUfAizWUrbeeZh5K1rhAQKCh51";
    let reqs = vec![
        post("cat absent", &format!("cat?arg={absent}"), Body::Exact),
        post(
            "block/stat absent",
            &format!("block/stat?arg={absent}"),
            Body::Exact,
        ),
        post(
            "pin/add absent",
            &format!("pin/add?arg={absent}"),
            Body::Exact,
        ),
    ];
    run(&http, &mut o, &mut s, reqs, &mut diffs, learn).await;

    for d in &diffs {
        eprintln!(
            "{}: {}\n    kubo:  {}\n    store: {}",
            d.request, d.aspect, d.kubo, d.store
        );
    }
    judge(&diffs);
    drop((kubo, offline));
    store.stop().await;
}
