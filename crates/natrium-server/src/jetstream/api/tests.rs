//! Tests of the JetStream API data layer against nats-server 2.15.1.
//!
//! The samples in `tests/data/api/` are captures from the 2.15.1 binary (request
//! subject and body, every raw response). Responses are parsed into our types and
//! serialized back; they must come out byte for byte. Request bodies must decode, and
//! the defaults/validation pipeline must turn the captured requests into exactly the
//! configs (or errors) nats-server answered with. Error texts of the Go decoder were
//! recorded from the live binary and are pinned in `go_decoder_error_texts`.

use std::path::{Path, PathBuf};

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::account::{AccountInfoBody, AccountLimits, AccountPurgeBody};
use super::cluster::{
    LeaderStepdownRequest, MetaLeaderStepdownBody, MetaServerRemoveBody, MetaServerRemoveRequest,
    MetaServerStreamMoveRequest, StreamLeaderStepdownBody, StreamRemovePeerBody,
    StreamRemovePeerRequest,
};
use super::consumer::*;
use super::consumer_check::*;
use super::direct::{
    DirectGetStatus, MsgGetRequest, parse_direct_get, parse_direct_get_last_by_subject,
};
use super::errors::{ApiError, ErrorId};
use super::go_json::{GoRequest, GoStruct, Mode, sample_value};
use super::pub_ack::{PubAck, PubAckResponse};
use super::stream::*;
use super::stream_check::*;
use super::time::{Timestamp, go_duration_string};
use super::{ApiResponse, ResponseType, ServerLimits, to_go_json};

// ---------------------------------------------------------------------------------------
// Sample loading.

struct Sample {
    file: String,
    subject: String,
    /// The request body bytes (objects re-serialized compactly).
    body: Vec<u8>,
    responses: Vec<String>,
}

fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/api")
}

fn parse_sample(file: &str, text: &str) -> Sample {
    let v: Value = serde_json::from_str(text).unwrap_or_else(|e| panic!("{file}: {e}"));
    let body = match v.get("request_body") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(s)) => s.clone().into_bytes(),
        Some(other) => serde_json::to_vec(other).unwrap_or_default(),
    };
    let responses = v
        .get("responses")
        .and_then(Value::as_array)
        .map(|rs| {
            rs.iter()
                .filter_map(|r| r.get("payload").and_then(Value::as_str).map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    Sample {
        file: file.to_string(),
        subject: v
            .get("request_subject")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string(),
        body,
        responses,
    }
}

fn sample(name: &str) -> Sample {
    let file = format!("{name}.json");
    let text =
        std::fs::read_to_string(data_dir().join(&file)).unwrap_or_else(|e| panic!("{file}: {e}"));
    parse_sample(&file, &text)
}

fn all_samples() -> Vec<Sample> {
    let mut files: Vec<String> = std::fs::read_dir(data_dir())
        .expect("tests/data/api")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|f| f.ends_with(".json"))
        .collect();
    files.sort();
    assert!(files.len() > 100, "samples missing from tests/data/api");
    files
        .iter()
        .map(|f| {
            let text = std::fs::read_to_string(data_dir().join(f)).unwrap_or_default();
            parse_sample(f, &text)
        })
        .collect()
}

fn first_response(s: &Sample) -> &str {
    s.responses
        .first()
        .unwrap_or_else(|| panic!("{}: no response", s.file))
}

fn json(s: &str) -> Value {
    serde_json::from_str(s).unwrap_or_else(|e| panic!("{e}: {s}"))
}

// ---------------------------------------------------------------------------------------
// Error table.

#[test]
fn error_table_is_complete_and_constructors_match_nats_server() {
    assert_eq!(ErrorId::ALL.len(), 226);
    for id in ErrorId::ALL {
        assert_eq!(ErrorId::from_err_code(id.err_code()), Some(id));
        assert!(id.constant().starts_with("JS"));
    }
    let e = ApiError::stream_not_found();
    assert_eq!(
        to_go_json(&e),
        r#"{"code":404,"err_code":10059,"description":"stream not found"}"#
    );
    let e = ApiError::invalid_json("json: unknown field \"bogus\"");
    assert_eq!(
        to_go_json(&e),
        r#"{"code":400,"err_code":10025,"description":"invalid JSON: json: unknown field \"bogus\""}"#
    );
    assert_eq!(ApiError::stream_replicas_not_supported().code, 500);
    assert_eq!(
        to_go_json(&ApiError::stream_replicas_not_supported()),
        r#"{"code":500,"err_code":10074,"description":"replicas \u003e 1 not supported in non-clustered mode"}"#
    );
    // Several placeholders, in Go's (alphabetical) parameter order.
    let e = ApiError::stream_external_del_prefix_overlaps("dp", "foo.>");
    assert_eq!(
        e.description,
        "stream external delivery prefix dp overlaps with stream subject foo.>"
    );
    // Substituted text is never substituted again (strings.Replacer semantics).
    let e = ApiError::stream_general("{err} and {stream}");
    assert_eq!(e.description, "{err} and {stream}");
    assert_eq!(
        ApiError::stream_wrong_last_sequence(2).description,
        "wrong last sequence: 2"
    );
    assert_eq!(
        ApiError::consumer_max_pending_ack_excess(100).description,
        "consumer max ack pending exceeds system limit of 100"
    );
    // Detail keeps the codes.
    let e = ApiError::maximum_streams_limit().with_detail("limit 3, in use 3");
    assert_eq!((e.code, e.err_code), (400, 10027));
    assert_eq!(
        e.description,
        "maximum number of streams reached (limit 3, in use 3)"
    );
    assert!(e.is(ErrorId::MaximumStreamsLimit));
    assert_eq!(
        e.to_string(),
        "maximum number of streams reached (limit 3, in use 3) (10027)"
    );
    // Round trip through JSON.
    let back: ApiError = serde_json::from_str(&to_go_json(&e)).expect("parse");
    assert_eq!(back, e);
}

#[test]
fn error_responses_serialize_like_nats_server() {
    let r = ApiResponse::<StreamInfoBody>::error(ApiError::stream_not_found());
    assert_eq!(
        r.to_json(),
        r#"{"type":"io.nats.jetstream.api.v1.stream_info_response","error":{"code":404,"err_code":10059,"description":"stream not found"},"total":0,"offset":0,"limit":0}"#
    );
    let r = ApiResponse::<StreamNamesBody>::error(ApiError::invalid_json("x"));
    assert!(
        r.to_json()
            .ends_with(r#""total":0,"offset":0,"limit":0,"streams":null}"#)
    );
    let r = ApiResponse::with_error(
        ConsumerNamesBody {
            consumers: Some(vec![]),
            ..Default::default()
        },
        ApiError::stream_not_found(),
    );
    assert!(r.to_json().ends_with(r#""limit":0,"consumers":[]}"#));
    let r = ApiResponse::<StreamPurgeBody>::error(ApiError::stream_not_found());
    assert!(r.to_json().ends_with(r#""purged":0}"#));
    let r = ApiResponse::<ConsumerPauseBody>::error(ApiError::consumer_not_found());
    assert!(
        r.to_json()
            .ends_with(r#""paused":false,"pause_until":"0001-01-01T00:00:00Z"}"#)
    );
}

// ---------------------------------------------------------------------------------------
// Response round trips.

fn rt<B: ResponseType + Serialize + DeserializeOwned>(payload: &str) -> Result<String, String> {
    let parsed: ApiResponse<B> = serde_json::from_str(payload).map_err(|e| e.to_string())?;
    Ok(parsed.to_json())
}

fn rt_pub_ack(payload: &str) -> Result<String, String> {
    let parsed: PubAckResponse = serde_json::from_str(payload).map_err(|e| e.to_string())?;
    String::from_utf8(parsed.to_wire()).map_err(|e| e.to_string())
}

fn round_trip(payload: &str) -> Result<String, String> {
    let v: Value = serde_json::from_str(payload).map_err(|e| e.to_string())?;
    let Some(ty) = v.get("type").and_then(Value::as_str) else {
        return rt_pub_ack(payload);
    };
    macro_rules! dispatch {
        ($($body:ty),* $(,)?) => {
            $(if ty == <$body as ResponseType>::TYPE {
                return rt::<$body>(payload);
            })*
        };
    }
    dispatch!(
        AccountInfoBody,
        AccountPurgeBody,
        StreamCreateBody,
        StreamUpdateBody,
        StreamInfoBody,
        StreamDeleteBody,
        StreamNamesBody,
        StreamListBody,
        StreamPurgeBody,
        MsgGetBody,
        MsgDeleteBody,
        StreamSnapshotBody,
        StreamRestoreBody,
        StreamLeaderStepdownBody,
        StreamRemovePeerBody,
        MetaLeaderStepdownBody,
        MetaServerRemoveBody,
        ConsumerCreateBody,
        ConsumerInfoBody,
        ConsumerDeleteBody,
        ConsumerLeaderStepdownBody,
        ConsumerNamesBody,
        ConsumerListBody,
        ConsumerPauseBody,
        ConsumerUnpinBody,
        ConsumerResetBody,
    );
    Err(format!("no type for {ty}"))
}

/// Every JSON payload of every sample (stream, consumer, account, cluster responses and
/// PubAcks) parses and re-serializes to the identical bytes.
#[test]
fn every_captured_response_round_trips_byte_exact() {
    let mut exact = 0;
    let mut failures = Vec::new();
    for s in all_samples() {
        for payload in &s.responses {
            let Ok(Value::Object(_)) = serde_json::from_str::<Value>(payload) else {
                continue;
            };
            match round_trip(payload) {
                Ok(out) if out == *payload => exact += 1,
                Ok(out) => failures.push(format!("{}:\n  want {payload}\n  got  {out}", s.file)),
                Err(e) => failures.push(format!("{}: {e}", s.file)),
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} not byte-exact:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(exact > 120, "only {exact} payloads checked");
}

#[test]
fn error_payloads_parse_as_no_info() {
    let s = sample("stream_info_not_found");
    let r: ApiResponse<StreamInfoBody> = serde_json::from_str(first_response(&s)).expect("parse");
    assert!(r.body.info.is_none());
    assert_eq!(r.error, Some(ApiError::stream_not_found()));
    let s = sample("consumer_info_not_found");
    let r: ApiResponse<ConsumerInfoBody> = serde_json::from_str(first_response(&s)).expect("parse");
    assert!(r.body.info.is_none());
    let s = sample("sys_account_info");
    let r: ApiResponse<AccountInfoBody> = serde_json::from_str(first_response(&s)).expect("parse");
    assert!(r.body.info.is_none());
    assert!(r.error.is_some_and(|e| e.is(ErrorId::NotEnabledForAccount)));
    // A response of another type is refused.
    assert!(serde_json::from_str::<ApiResponse<StreamCreateBody>>(first_response(&s)).is_err());
}

#[test]
fn parsed_values_are_what_the_wire_says() {
    let s = sample("stream_info_subjects_filter");
    let r: ApiResponse<StreamInfoBody> = serde_json::from_str(first_response(&s)).expect("parse");
    let info = r.body.info.expect("info");
    assert_eq!(r.body.paged.limit, 100_000);
    assert_eq!(info.state.subjects.get("kv.c"), Some(&5));
    assert_eq!(info.config.max_age, 3_600_000_000_000);
    assert_eq!(info.config.compression, Compression::S2);
    assert_eq!(info.cluster.map(|c| c.leader), Some("anchor1".to_string()));
    assert_eq!(
        info.state.first_ts.unix_nanos(),
        Some(1_795_875_229_908_341_545)
    );

    let s = sample("msg_get_seq");
    let r: ApiResponse<MsgGetBody> = serde_json::from_str(first_response(&s)).expect("parse");
    let m = r.body.message.expect("message");
    assert_eq!(m.hdrs, b"NATS/1.0\r\nNats-Msg-Id: id-1\r\n\r\n");
    assert_eq!(m.data, b"hello");

    let s = sample("consumer_create_pinned");
    let r: ApiResponse<ConsumerCreateBody> =
        serde_json::from_str(first_response(&s)).expect("parse");
    let info = r.body.info.expect("info");
    assert_eq!(info.priority_groups[0].pinned_ts, Timestamp::ZERO);
    let cfg = info.config.expect("config");
    assert_eq!(cfg.priority_policy, PriorityPolicy::PinnedClient);

    let s = sample("account_info_after");
    let r: ApiResponse<AccountInfoBody> = serde_json::from_str(first_response(&s)).expect("parse");
    let info = r.body.info.expect("info");
    assert_eq!(info.tier.reserved_storage, 1_048_576);
    assert_eq!(info.tier.limits, AccountLimits::default());
    assert_eq!(info.api.errors, 25);
}

// ---------------------------------------------------------------------------------------
// PubAck.

#[test]
fn pub_ack_wire_format_keeps_the_duplicate_quirk() {
    assert_eq!(
        PubAck::new("ORDERS", 1).to_wire(),
        br#"{"stream":"ORDERS","seq":1}"#
    );
    let dup = PubAck {
        duplicate: true,
        ..PubAck::new("ORDERS", 2)
    };
    assert_eq!(
        dup.to_wire(),
        br#"{"stream":"ORDERS","seq":2,"duplicate": true}"#
    );
    let dom = PubAck {
        domain: "hub".into(),
        ..PubAck::new("ORDERS", 3)
    };
    assert_eq!(
        dom.to_wire(),
        br#"{"stream":"ORDERS","domain":"hub","seq":3}"#
    );
    let cnt = PubAck {
        value: "5".into(),
        ..PubAck::new("CNT", 1)
    };
    assert_eq!(cnt.to_wire(), br#"{"stream":"CNT","seq":1,"val":"5"}"#);
    let batch = PubAck {
        batch: "b1".into(),
        count: 3,
        ..PubAck::new("S", 9)
    };
    assert_eq!(
        batch.to_wire(),
        br#"{"stream":"S","seq":9,"batch":"b1","count":3}"#
    );
    // Go's %q, not JSON escaping: `>` stays.
    assert_eq!(
        PubAck::new("a>b", 1).to_wire(),
        br#"{"stream":"a>b","seq":1}"#
    );
    let err = PubAckResponse::error(
        "ORDERS",
        ApiError::stream_rollup_failed("rollup value invalid: \"bogus\""),
    );
    assert_eq!(
        err.to_wire(),
        br#"{"error":{"code":500,"err_code":10111,"description":"rollup value invalid: \"bogus\""},"stream":"ORDERS","seq":0}"#
    );
    let s = sample("pub_ack_msgid_duplicate");
    assert_eq!(dup.to_wire(), first_response(&s).as_bytes());
    let s = sample("pub_expected_last_seq_wrong");
    assert_eq!(
        PubAckResponse::error("ORDERS", ApiError::stream_wrong_last_sequence(2)).to_wire(),
        first_response(&s).as_bytes()
    );
}

// ---------------------------------------------------------------------------------------
// Requests.

fn decode_ok<T: GoRequest>(s: &Sample, mode: Mode) {
    if let Err(e) = T::decode(&s.body, mode) {
        panic!(
            "{}: {} did not decode: {e}",
            s.file,
            String::from_utf8_lossy(&s.body)
        );
    }
}

/// Every captured request body decodes into its request type.
#[test]
fn every_captured_request_body_decodes() {
    let mut checked = 0;
    for s in all_samples() {
        let subj = s.subject.as_str();
        let Some(api) = subj.strip_prefix("$JS.API.") else {
            continue;
        };
        let strict = Mode::Strict;
        match api {
            a if a.starts_with("STREAM.CREATE.") || a.starts_with("STREAM.UPDATE.") => {
                match StreamConfigRequest::decode(&s.body, strict) {
                    Ok(_) => {}
                    Err(e) => {
                        // The one capture of a bad body: same text as nats-server.
                        let want = json(first_response(&s));
                        assert_eq!(
                            json(&to_go_json(&ApiError::invalid_json(&e))),
                            want["error"],
                            "{}",
                            s.file
                        );
                    }
                }
            }
            a if a.starts_with("STREAM.INFO.") => decode_ok::<StreamInfoRequest>(&s, strict),
            "STREAM.NAMES" => decode_ok::<StreamNamesRequest>(&s, strict),
            "STREAM.LIST" => decode_ok::<StreamListRequest>(&s, strict),
            a if a.starts_with("STREAM.PURGE.") => decode_ok::<StreamPurgeRequest>(&s, strict),
            a if a.starts_with("STREAM.MSG.GET.") => decode_ok::<MsgGetRequest>(&s, strict),
            a if a.starts_with("STREAM.MSG.DELETE.") => decode_ok::<MsgDeleteRequest>(&s, strict),
            a if a.starts_with("STREAM.SNAPSHOT.") => {
                decode_ok::<StreamSnapshotRequest>(&s, strict)
            }
            a if a.starts_with("STREAM.PEER.REMOVE.") => {
                decode_ok::<StreamRemovePeerRequest>(&s, strict)
            }
            a if a.contains("LEADER.STEPDOWN") => decode_ok::<LeaderStepdownRequest>(&s, strict),
            "SERVER.REMOVE" => decode_ok::<MetaServerRemoveRequest>(&s, strict),
            a if a.starts_with("ACCOUNT.STREAM.MOVE.") => {
                decode_ok::<MetaServerStreamMoveRequest>(&s, strict)
            }
            a if a.starts_with("CONSUMER.CREATE.") || a.starts_with("CONSUMER.DURABLE.CREATE.") => {
                decode_ok::<CreateConsumerRequest>(&s, strict)
            }
            a if a.starts_with("CONSUMER.NAMES.") || a.starts_with("CONSUMER.LIST.") => {
                decode_ok::<ConsumersRequest>(&s, strict)
            }
            a if a.starts_with("CONSUMER.PAUSE.") => decode_ok::<ConsumerPauseRequest>(&s, strict),
            a if a.starts_with("CONSUMER.UNPIN.") => {
                decode_ok::<ConsumerUnpinRequest>(&s, Mode::Unmarshal)
            }
            a if a.starts_with("CONSUMER.RESET.") => {
                decode_ok::<ConsumerResetRequest>(&s, Mode::Unmarshal)
            }
            a if a.starts_with("CONSUMER.MSG.NEXT.") => {
                let r = NextRequest::parse_body(&s.body);
                if s.file == "pull_next_plain_int.json" {
                    assert_eq!(r, Ok(NextRequestBody::Batch(1)));
                } else if s.body.is_empty() {
                    assert_eq!(r, Ok(NextRequestBody::Default));
                } else {
                    assert!(
                        matches!(r, Ok(NextRequestBody::Json(_))),
                        "{}: {r:?}",
                        s.file
                    );
                }
            }
            a if a.starts_with("DIRECT.GET.") => {
                let tokens = subj.split('.').count();
                let r = if tokens > 5 {
                    parse_direct_get_last_by_subject(subj, &s.body)
                } else {
                    parse_direct_get(&s.body)
                };
                assert!(r.is_ok(), "{}: {r:?}", s.file);
            }
            _ => continue,
        }
        checked += 1;
    }
    assert!(checked > 60, "only {checked} requests checked");
}

#[test]
fn request_values_decode_correctly() {
    let s = sample("stream_create_full");
    let req = StreamConfigRequest::decode(&s.body, Mode::Strict).expect("decode");
    let c = &req.config;
    assert_eq!(c.max_msgs_per_subject, 5);
    assert_eq!(c.max_msg_size, 65_536);
    assert_eq!(c.discard, DiscardPolicy::New);
    assert!(c.discard_new_per_subject && c.allow_direct && c.deny_delete);
    assert_eq!(c.subject_delete_marker_ttl, 60_000_000_000);
    assert_eq!(c.metadata.get("k").map(String::as_str), Some("v"));

    let s = sample("consumer_create_pinned");
    let req = CreateConsumerRequest::decode(&s.body, Mode::Strict).expect("decode");
    assert_eq!(req.config.priority_groups, vec!["g1".to_string()]);
    assert_eq!(req.config.priority_timeout, 60_000_000_000);

    let s = sample("consumer_create_action_create_exists");
    let req = CreateConsumerRequest::decode(&s.body, Mode::Strict).expect("decode");
    assert_eq!(req.action, ConsumerAction::Create);

    let s = sample("consumer_pause");
    let req = ConsumerPauseRequest::decode(&s.body, Mode::Strict).expect("decode");
    assert_eq!(req.pause_until.to_rfc3339_nano(), "2099-01-01T00:00:00Z");
    let req = ConsumerPauseRequest::decode(b"", Mode::Strict).expect("decode");
    assert!(req.pause_until.is_zero());

    let s = sample("direct_get_multi_last");
    let req = parse_direct_get(&s.body).expect("parse");
    assert_eq!(req.multi_last, vec!["kv.>".to_string()]);
    let req =
        parse_direct_get_last_by_subject("$JS.API.DIRECT.GET.KVLIKE.kv.a", b"").expect("parse");
    assert_eq!(req.last_by_subj, "kv.a");
    assert_eq!(parse_direct_get(b""), Err(DirectGetStatus::EmptyRequest));
    assert_eq!(parse_direct_get(b"{}"), Err(DirectGetStatus::EmptyRequest));
    assert_eq!(
        parse_direct_get(b"{"),
        Err(DirectGetStatus::MalformedRequest)
    );
    // Unknown fields are fine for the lenient direct get decoder.
    assert!(parse_direct_get(br#"{"seq":1,"bogus":2}"#).is_ok());
    assert_eq!(
        parse_direct_get(br#"{"seq":1,"last_by_subj":"a"}"#),
        Err(DirectGetStatus::BadRequest)
    );
    assert_eq!(
        parse_direct_get_last_by_subject("$JS.API.DIRECT.GET.KVLIKE.kv.a", br#"{"seq":1}"#),
        Err(DirectGetStatus::BadRequest)
    );
    assert_eq!(
        DirectGetStatus::EmptyRequest.header(),
        b"NATS/1.0 408 Empty Request\r\n\r\n"
    );

    let s = sample("msg_get_bad_request");
    let req = MsgGetRequest::decode(&s.body, Mode::Strict).expect("decode");
    let err = req.check_msg_get().expect_err("bad request");
    assert_eq!(json(&to_go_json(&err)), json(first_response(&s))["error"]);
    for ok in [
        "msg_get_seq",
        "msg_get_last_by_subj",
        "msg_get_next_by_subj",
    ] {
        let s = sample(ok);
        let req = MsgGetRequest::decode(&s.body, Mode::Strict).expect("decode");
        assert_eq!(req.check_msg_get(), Ok(()), "{ok}");
    }

    assert_eq!(
        NextRequest::parse_body(br#"{"batch":1,"expires":1000000000,"idle_heartbeat":1000000000}"#),
        Err("heartbeat value too large".to_string())
    );
    assert_eq!(
        NextRequest::parse_body(b"  +7 "),
        Ok(NextRequestBody::Batch(7))
    );
    assert_eq!(
        NextRequest::parse_body(b"nope"),
        Ok(NextRequestBody::Default)
    );
}

/// Every schema agrees with its serde type: a value with every schema field set decodes
/// and serializes back to the same JSON (so no field is missing, misnamed or lost).
#[test]
fn go_schemas_match_serde_types() {
    fn check<T: GoRequest + Serialize>() {
        let schema: &'static GoStruct = T::SCHEMA;
        let sample = sample_value(schema);
        let body = serde_json::to_vec(&sample).expect("json");
        let decoded: T =
            T::decode(&body, Mode::Strict).unwrap_or_else(|e| panic!("{}: {e}", schema.name));
        let back: Value = serde_json::to_value(&decoded).expect("value");
        assert_eq!(back, sample, "{}", schema.name);
    }
    check::<StreamConfigRequest>();
    check::<StreamInfoRequest>();
    check::<StreamNamesRequest>();
    check::<StreamListRequest>();
    check::<StreamPurgeRequest>();
    check::<MsgDeleteRequest>();
    check::<StreamSnapshotRequest>();
    check::<StreamRestoreRequest>();
    check::<MsgGetRequest>();
    check::<CreateConsumerRequest>();
    check::<ConsumersRequest>();
    check::<ConsumerPauseRequest>();
    check::<ConsumerUnpinRequest>();
    check::<ConsumerResetRequest>();
    check::<NextRequest>();
    check::<LeaderStepdownRequest>();
    check::<StreamRemovePeerRequest>();
    check::<MetaServerRemoveRequest>();
    check::<MetaServerStreamMoveRequest>();
}

fn stream_err(body: &str) -> String {
    match StreamConfigRequest::decode(body.as_bytes(), Mode::Strict) {
        Ok(_) => "OK".to_string(),
        Err(e) => e.0,
    }
}

/// The Go decoder's error texts, recorded from the nats-server 2.15.1 binary.
#[test]
fn go_decoder_error_texts() {
    let cases: &[(&str, &str)] = &[
        (
            r#"{"name":"X","bogus":1}"#,
            r#"json: unknown field "bogus""#,
        ),
        (
            r#"{"name":"X","max_msgs":"a"}"#,
            "json: cannot unmarshal string into Go struct field StreamConfigRequest.max_msgs of type int64",
        ),
        (
            r#"{"name":"X","consumer_limits":{"max_ack_pending":"a"}}"#,
            "json: cannot unmarshal string into Go struct field StreamConfigRequest.consumer_limits.max_ack_pending of type int",
        ),
        (
            r#"{"name":"X","consumer_limits":{"bogus":1}}"#,
            r#"json: unknown field "bogus""#,
        ),
        (
            r#"{"name":"X","retention":"x"}"#,
            r#"can not unmarshal "\"x\"""#,
        ),
        (
            r#"{"bogus":1,"retention":"x"}"#,
            r#"json: unknown field "bogus""#,
        ),
        (
            r#"{"name":"X","retention":null}"#,
            r#"can not unmarshal "null""#,
        ),
        (r#"{"name":"X","#, "unexpected EOF"),
        (
            r#"{"name":"X"}x"#,
            "invalid character 'x' looking for beginning of value at offset 13",
        ),
        (
            r#"{"name":"X","max_msgs":1.5}"#,
            "json: cannot unmarshal number 1.5 into Go struct field StreamConfigRequest.max_msgs of type int64",
        ),
        (
            r#"{"name":"X","max_msgs":99999999999999999999}"#,
            "json: cannot unmarshal number 99999999999999999999 into Go struct field StreamConfigRequest.max_msgs of type int64",
        ),
        (
            r#"{"name":"X","max_msg_size":3000000000}"#,
            "json: cannot unmarshal number 3000000000 into Go struct field StreamConfigRequest.max_msg_size of type int32",
        ),
        (
            r#"{"name":"X","first_seq":-1}"#,
            "json: cannot unmarshal number -1 into Go struct field StreamConfigRequest.first_seq of type uint64",
        ),
        (
            r#"{"name":"X","subjects":"a"}"#,
            "json: cannot unmarshal string into Go struct field StreamConfigRequest.subjects of type []string",
        ),
        (
            r#"{"name":"X","subjects":["a",1]}"#,
            "json: cannot unmarshal number into StreamConfigRequest.subjects.1 of type string",
        ),
        (
            r#"{"name":5}"#,
            "json: cannot unmarshal number into Go struct field StreamConfigRequest.name of type string",
        ),
        (
            r#"{"name":"X","sources":[{"name":"a","subject_transforms":[{"src":1}]}]}"#,
            "json: cannot unmarshal number into Go struct field StreamConfigRequest.sources.0.subject_transforms.0.src of type string",
        ),
        (
            r#"{"name":"X","sources":[{"name":"a"},5]}"#,
            "json: cannot unmarshal number into StreamConfigRequest.sources.1 of type server.StreamSource",
        ),
        (
            r#"{"name":"X","sources":"x"}"#,
            "json: cannot unmarshal string into Go struct field StreamConfigRequest.sources of type []*server.StreamSource",
        ),
        (
            r#"{"name":"X","metadata":{"a/b~c":1}}"#,
            "json: cannot unmarshal number into Go struct field StreamConfigRequest.metadata.a~1b~0c of type string",
        ),
        (
            r#"{"name":"X","metadata":{"5":1}}"#,
            "json: cannot unmarshal number into StreamConfigRequest.metadata.5 of type string",
        ),
        (
            r#"{"name":"X","metadata":[]}"#,
            "json: cannot unmarshal array into Go struct field StreamConfigRequest.metadata of type map[string]string",
        ),
        (
            r#"{"name":"X","max_age":"1s"}"#,
            "json: cannot unmarshal string into Go struct field StreamConfigRequest.max_age of type time.Duration",
        ),
        (
            r#"{"name":"X","no_ack":1}"#,
            "json: cannot unmarshal number into Go struct field StreamConfigRequest.no_ack of type bool",
        ),
        (
            r#"{"name":"X","max_msgs":true}"#,
            "json: cannot unmarshal bool into Go struct field StreamConfigRequest.max_msgs of type int64",
        ),
        (
            r#"{"name":"X","placement":[]}"#,
            "json: cannot unmarshal array into Go struct field StreamConfigRequest.placement of type server.Placement",
        ),
        (
            r#"{"name":"X","mirror":{"opt_start_time":5}}"#,
            "json: cannot unmarshal number into Go struct field StreamConfigRequest.mirror.opt_start_time of type time.Time",
        ),
        (
            r#"{"name":"X","mirror":{"opt_start_time":"bad"}}"#,
            r#"parsing time "bad" as "2006-01-02T15:04:05Z07:00": cannot parse "bad" as "2006""#,
        ),
        (
            r#"{"name":"X","mirror":{"opt_start_time":"2024-13-01T00:00:00Z"}}"#,
            r#"parsing time "2024-13-01T00:00:00Z": month out of range"#,
        ),
        (
            "[1]",
            "json: cannot unmarshal array into Go value of type server.StreamConfigRequest",
        ),
        (
            "5",
            "json: cannot unmarshal number into Go value of type server.StreamConfigRequest",
        ),
        (
            r#"{"name":"X","storage": [ "file" , 1 ] }"#,
            r#"can not unmarshal "[ \"file\" , 1 ]""#,
        ),
        (
            r#"{"name":"X","storage":"fil\u0065"}"#,
            r#"can not unmarshal "\"fil\\u0065\"""#,
        ),
        (
            r#"{"name":"X","compression":"x"}"#,
            "unknown compression algorithm",
        ),
        (
            r#"{"name":"X","compression":null}"#,
            "unknown compression algorithm",
        ),
        (
            r#"{"name":"X","compression":5}"#,
            "json: cannot unmarshal number into Go value of type string",
        ),
        (
            r#"{"name":"X" "a":1}"#,
            r#"invalid character '"' after object key:value pair at offset 13"#,
        ),
        (
            r#"{"name":"X",}"#,
            "invalid character '}' looking for beginning of object key string at offset 13",
        ),
        (
            "{\"name\":\"X\n\"}",
            r"invalid character '\n' in string at offset 11",
        ),
        (
            "{\"name\":\"X\u{1}\"}",
            r"invalid character '\x01' in string at offset 11",
        ),
        (
            r#"{"name":"X\q"}"#,
            r"invalid escape sequence `\q` in string at offset 12",
        ),
        (
            r#"{"name":"X\u12x4"}"#,
            r"invalid escape sequence `\u12x4` in string at offset 16",
        ),
        (
            r#"{"name":"X\u12"}"#,
            r#"invalid escape sequence `\u12"}` in string at offset 16"#,
        ),
        (
            r#"{"name":tru}"#,
            "invalid character '}' in literal true (expecting 'e') at offset 12",
        ),
        (
            r#"{"name":"X","max_msgs":-}"#,
            "invalid character '}' in numeric literal at offset 25",
        ),
        (
            r#"{"name":"X","max_msgs":01}"#,
            "invalid character '1' after object key:value pair at offset 25",
        ),
        (
            r#"{"name":"X","max_msgs":.5}"#,
            "invalid character '.' looking for beginning of value at offset 24",
        ),
        (
            r#"{"name":"X","no_ack":tRue}"#,
            "invalid character 'R' in literal true (expecting 'r') at offset 23",
        ),
        (
            r#"{name:1}"#,
            "invalid character 'n' looking for beginning of object key string at offset 2",
        ),
        (
            r#"{"name" 1}"#,
            "invalid character '1' after object key at offset 9",
        ),
        (
            r#"{"name":"X","subjects":["a" "b"]}"#,
            r#"invalid character '"' after array element at offset 29"#,
        ),
        (
            "{\"name\":\u{e9}}",
            "invalid character '\u{e9}' looking for beginning of value at offset 10",
        ),
        (
            "\u{feff}{\"name\":\"X\"}",
            r"invalid character '\ufeff' looking for beginning of value at offset 3",
        ),
        (
            r#"{"name":"X"} ]"#,
            "invalid character ']' looking for beginning of value at offset 14",
        ),
        (r#"{"name":"X"} [1"#, "unexpected EOF"),
        (
            r#"{"bogus":1, x}"#,
            "invalid character 'x' looking for beginning of object key string at offset 13",
        ),
        (
            r#"{"max_msgs":"a","bogus":1}"#,
            "json: cannot unmarshal string into Go struct field StreamConfigRequest.max_msgs of type int64",
        ),
        (
            r#"{"max_msgs":"a","retention":"x"}"#,
            "json: cannot unmarshal string into Go struct field StreamConfigRequest.max_msgs of type int64",
        ),
        (
            r#"{"name":"X","storage":"file"}{"bogus":1}"#,
            r#"json: unknown field "bogus""#,
        ),
        (
            r#"{"MAX_MSGS":"a"}"#,
            "json: cannot unmarshal string into Go struct field StreamConfigRequest.MAX_MSGS of type int64",
        ),
        (
            "{\"bogus\\u00e9\\n\":1}",
            "json: unknown field \"bogus\u{e9}\\n\"",
        ),
        (
            r#"{"name":"X","pedantic":"y"}"#,
            "json: cannot unmarshal string into Go struct field StreamConfigRequest.pedantic of type bool",
        ),
    ];
    for (body, want) in cases {
        assert_eq!(stream_err(body), *want, "body {body}");
    }
    let raw = |b: &[u8]| match StreamConfigRequest::decode(b, Mode::Strict) {
        Ok(_) => "OK".to_string(),
        Err(e) => e.0,
    };
    assert_eq!(
        raw(b"{\"name\":\xff}"),
        r"invalid character '\xff' looking for beginning of value at offset 9"
    );
    assert_eq!(
        raw(b"{\"name\":\"X\"}\x00"),
        r"invalid character '\x00' looking for beginning of value at offset 13"
    );
    assert_eq!(
        raw(b"{\"name\":\"X\",\"\xff\":1}"),
        "json: unknown field \"\u{fffd}\""
    );
    assert_eq!(
        raw("{\"\\u017fubjects\":\"a\"}".as_bytes()),
        "json: cannot unmarshal string into Go struct field StreamConfigRequest.\u{17f}ubjects of type []string"
    );
    assert_eq!(
        raw(b"5x"),
        "json: cannot unmarshal number into Go value of type server.StreamConfigRequest"
    );
    let depth = |n: usize| format!("{{\"placement\":{}{}}}", "[".repeat(n), "]".repeat(n));
    assert_eq!(
        stream_err(&depth(11_000)),
        "exceeded max depth at offset 10013"
    );
    assert_eq!(
        stream_err(&depth(9_000)),
        "json: cannot unmarshal array into Go struct field StreamConfigRequest.placement of type server.Placement"
    );
    let c = StreamConfigRequest::decode(br#"{"name":"X","metadata":{"a":null}}"#, Mode::Strict)
        .expect("decode");
    assert_eq!(c.config.metadata.get("a").map(String::as_str), Some(""));
    let c = StreamConfigRequest::decode(
        b"{\"name\":\"X\",\"description\":\"\xe2\x82\"}",
        Mode::Strict,
    )
    .expect("decode");
    assert_eq!(c.config.description, "\u{fffd}\u{fffd}");

    let consumer_cases: &[(&str, &str)] = &[
        (
            r#"{"stream_name":"S","config":{"action":"x"}}"#,
            r#"json: unknown field "action""#,
        ),
        (
            r#"{"stream_name":"S","action":"x"}"#,
            r#"unknown consumer action: "x""#,
        ),
        (
            r#"{"stream_name":"S","action":null}"#,
            "unknown consumer action: null",
        ),
        (
            r#"{"stream_name":"S","config":{"priority_policy":"x"}}"#,
            r#"unknown priority policy: "x""#,
        ),
        (
            r#"{"stream_name":"S","config":{"ack_policy":"x"}}"#,
            r#"can not unmarshal "\"x\"""#,
        ),
        (
            r#"{"stream_name":"S","config":{"backoff":[1,"a"]}}"#,
            "json: cannot unmarshal string into CreateConsumerRequest.config.backoff.1 of type time.Duration",
        ),
        (
            r#"{"stream_name":"S","config":"x"}"#,
            "json: cannot unmarshal string into Go struct field CreateConsumerRequest.config of type server.ConsumerConfig",
        ),
        (
            r#"{"stream_name":"S","config":{"pause_until":"x"}}"#,
            r#"parsing time "x" as "2006-01-02T15:04:05Z07:00": cannot parse "x" as "2006""#,
        ),
    ];
    for (body, want) in consumer_cases {
        let got = CreateConsumerRequest::decode(body.as_bytes(), Mode::Strict).map(|_| ());
        assert_eq!(
            got,
            Err(super::go_json::GoJsonError(want.to_string())),
            "body {body}"
        );
    }

    // `json.Unmarshal` handlers: no offsets, one value, unknown fields ignored.
    let unpin =
        |b: &str| ConsumerUnpinRequest::decode(b.as_bytes(), Mode::Unmarshal).map_err(|e| e.0);
    assert_eq!(unpin(""), Err("unexpected end of JSON input".to_string()));
    assert_eq!(
        unpin(r#"{"group":"a""#),
        Err("unexpected end of JSON input".to_string())
    );
    assert_eq!(
        unpin(r#"{"group":"a"}x"#),
        Err("invalid character 'x' after top-level value".to_string())
    );
    assert_eq!(
        unpin(r#"{"group":1}"#),
        Err("json: cannot unmarshal number into Go struct field JSApiConsumerUnpinRequest.group of type string".to_string())
    );
    assert_eq!(
        unpin("[]"),
        Err(
            "json: cannot unmarshal array into Go value of type server.JSApiConsumerUnpinRequest"
                .to_string()
        )
    );
    assert_eq!(unpin(r#"{"bogus":1}"#).map(|r| r.group), Ok(String::new()));

    // Lenient server mode falls back to json.Unmarshal rules.
    let r =
        StreamConfigRequest::decode(br#"{"name":"X","bogus":1}"#, Mode::Lenient).expect("lenient");
    assert_eq!(r.config.name, "X");
}

/// Go's merge semantics for repeated keys and concatenated values.
#[test]
fn go_decoder_merges_like_nats_server() {
    let d = |b: &str| {
        StreamConfigRequest::decode(b.as_bytes(), Mode::Strict)
            .expect("decode")
            .config
    };
    let c = d(r#"{"name":"X"} {"max_msgs":5, "name":"X"}"#);
    assert_eq!((c.name.as_str(), c.max_msgs), ("X", 5));
    let c = d(r#"{"name":"X","placement":{"cluster":"a"},"placement":{"tags":["t"]}}"#);
    assert_eq!(
        c.placement,
        Some(Placement {
            cluster: "a".into(),
            tags: vec!["t".into()],
            preferred: String::new()
        })
    );
    let c = d(r#"{"name":"X","metadata":{"a":"1"},"metadata":{"b":"2"}}"#);
    assert_eq!(c.metadata.len(), 2);
    let c = d(r#"{"name":"X","subjects":["a","b"],"subjects":["c"]}"#);
    assert_eq!(c.subjects, vec!["c".to_string()]);
    let c = d(
        r#"{"name":"X","sources":[{"name":"A","filter_subject":"f"}]} {"name":"X","sources":[{"name":"B"}]}"#,
    );
    assert_eq!(
        (
            c.sources[0].name.as_str(),
            c.sources[0].filter_subject.as_str()
        ),
        ("B", "f")
    );
    let c = d(
        r#"{"name":"X","mirror":{"name":"A","filter_subject":"f"},"mirror":null,"mirror":{"name":"B"}}"#,
    );
    assert_eq!(c.mirror.map(|m| m.filter_subject), Some(String::new()));
    let c = d(r#"{"name":"X","consumer_limits":{"max_ack_pending":5},"consumer_limits":null}"#);
    assert_eq!(c.consumer_limits.max_ack_pending, 5);
    let c = d(r#"{"Name":"X2","MAX_MSGS":3}"#);
    assert_eq!((c.name.as_str(), c.max_msgs), ("X2", 3));
    let c = d(r#"{"name":"X","max_msgs":1,"MAX_MSGS":2}"#);
    assert_eq!(c.max_msgs, 2);
    let c = d(r#"{"name":"X","max_msgs":null,"max_msgs":-0}"#);
    assert_eq!(c.max_msgs, 0);
    let c = d("{\"name\":\"X\",\"description\":\"\\ud800\"}");
    assert_eq!(c.description, "\u{fffd}");
    let c = d(r#"{"name":"X","discard":"NEW","compression":"s\u0032","persist_mode":""}"#);
    assert_eq!(
        (c.discard, c.compression, c.persist_mode),
        (DiscardPolicy::New, Compression::S2, PersistMode::Default)
    );
    let c = d(r#"{"name":"X","subjects":[null,"a"]}"#);
    assert_eq!(c.subjects, vec![String::new(), "a".to_string()]);
    assert_eq!(d("null").name, "");
    assert_eq!(d("  ").name, "");
    let r = CreateConsumerRequest::decode(
        br#"{"config":{"deliver_policy":"undefined"}}"#,
        Mode::Strict,
    )
    .expect("decode");
    assert_eq!(r.config.deliver_policy, DeliverPolicy::All);
    // Hostile nesting is an error, not a stack overflow.
    let deep = format!(
        "{{\"placement\":{}{}}}",
        "[".repeat(200_000),
        "]".repeat(200_000)
    );
    assert!(stream_err(&deep).starts_with("exceeded max depth"));
}

// ---------------------------------------------------------------------------------------
// Time.

#[test]
fn timestamps_follow_go() {
    let t = Timestamp::from_unix_nanos(1_795_875_226_940_691_991);
    assert_eq!(t.to_rfc3339_nano(), "2026-11-28T14:13:46.940691991Z");
    assert_eq!(
        Timestamp::from_unix_nanos(1_795_875_226_940_000_000).to_rfc3339_nano(),
        "2026-11-28T14:13:46.94Z"
    );
    assert_eq!(Timestamp::ZERO.to_rfc3339_nano(), "0001-01-01T00:00:00Z");
    assert_eq!(Timestamp::from_store_nanos(0), Timestamp::ZERO);
    assert_eq!(
        Timestamp::from_unix_nanos(-1).to_rfc3339_nano(),
        "1969-12-31T23:59:59.999999999Z"
    );
    let ok: &[(&str, &str)] = &[
        ("2024-01-01T00:00:00+02:00", "2024-01-01T00:00:00+02:00"),
        ("2024-01-01T0:00:00Z", "2024-01-01T00:00:00Z"),
        ("2024-01-01T00:00:00.123000Z", "2024-01-01T00:00:00.123Z"),
        (
            "2024-01-01T00:00:00.1234567891Z",
            "2024-01-01T00:00:00.123456789Z",
        ),
        ("2024-01-01T00:00:00-00:00", "2024-01-01T00:00:00Z"),
        ("0001-01-01T00:00:00Z", "0001-01-01T00:00:00Z"),
        ("2024-01-01T00:00:00,5Z", "2024-01-01T00:00:00.5Z"),
        ("2024-01-01T00:00:00+02:30", "2024-01-01T00:00:00+02:30"),
        (
            "2024-02-29T23:59:59.999999999-05:00",
            "2024-02-29T23:59:59.999999999-05:00",
        ),
    ];
    for (input, want) in ok {
        let t = Timestamp::parse_rfc3339(input).unwrap_or_else(|e| panic!("{input}: {e}"));
        assert_eq!(t.to_rfc3339_nano(), *want);
    }
    let plus2 = Timestamp::parse_rfc3339("2024-01-01T02:00:00+02:00").expect("parse");
    assert_eq!(
        plus2.unix_nanos(),
        Timestamp::parse_rfc3339("2024-01-01T00:00:00Z")
            .expect("parse")
            .unix_nanos()
    );
    assert!(
        Timestamp::parse_rfc3339("0001-01-01T02:00:00+02:00")
            .expect("parse")
            .is_zero()
    );
    let bad: &[(&str, &str)] = &[
        (
            "bad",
            r#"parsing time "bad" as "2006-01-02T15:04:05Z07:00": cannot parse "bad" as "2006""#,
        ),
        (
            "2024-02-30T00:00:00Z",
            r#"parsing time "2024-02-30T00:00:00Z": day out of range"#,
        ),
        (
            "2024-01-01T25:00:00Z",
            r#"parsing time "2024-01-01T25:00:00Z": hour out of range"#,
        ),
        (
            "2024-01-01T00:00:60Z",
            r#"parsing time "2024-01-01T00:00:60Z": second out of range"#,
        ),
        (
            "2024-01-01 00:00:00Z",
            r#"parsing time "2024-01-01 00:00:00Z" as "2006-01-02T15:04:05Z07:00": cannot parse " 00:00:00Z" as "T""#,
        ),
        (
            "2024-01-01T00:00:00",
            r#"parsing time "2024-01-01T00:00:00" as "2006-01-02T15:04:05Z07:00": cannot parse "" as "Z07:00""#,
        ),
        (
            "2024-01-01T00:00:00.Z",
            r#"parsing time "2024-01-01T00:00:00.Z" as "2006-01-02T15:04:05Z07:00": cannot parse ".Z" as "Z07:00""#,
        ),
        (
            "2024-01-01t00:00:00z",
            r#"parsing time "2024-01-01t00:00:00z" as "2006-01-02T15:04:05Z07:00": cannot parse "t00:00:00z" as "T""#,
        ),
        (
            "10000-01-01T00:00:00Z",
            r#"parsing time "10000-01-01T00:00:00Z" as "2006-01-02T15:04:05Z07:00": cannot parse "0-01-01T00:00:00Z" as "-""#,
        ),
        (
            "2024-1-01T00:00:00Z",
            r#"parsing time "2024-1-01T00:00:00Z" as "2006-01-02T15:04:05Z07:00": cannot parse "1-01T00:00:00Z" as "01""#,
        ),
        (
            "2024-01-01T00:00:00+0200",
            r#"parsing time "2024-01-01T00:00:00+0200" as "2006-01-02T15:04:05Z07:00": cannot parse "+0200" as "Z07:00""#,
        ),
        (
            "2024-01-01T00:00:00+02:00:00",
            r#"parsing time "2024-01-01T00:00:00+02:00:00": extra text: ":00""#,
        ),
        (
            "2024-01-01T00:00:00+0\u{e9}:00",
            "parsing time \"2024-01-01T00:00:00+0\u{e9}:00\" as \"2006-01-02T15:04:05Z07:00\": cannot parse \"+0\u{e9}:00\" as \"Z07:00\"",
        ),
    ];
    for (input, want) in bad {
        assert_eq!(
            Timestamp::parse_rfc3339(input).err().as_deref(),
            Some(*want),
            "{input}"
        );
    }
    assert_eq!(go_duration_string(120_000_000_000), "2m0s");
    assert_eq!(go_duration_string(3_600_000_000_000), "1h0m0s");
    assert_eq!(go_duration_string(1_500_000_000), "1.5s");
    assert_eq!(go_duration_string(100_000_000), "100ms");
    assert_eq!(go_duration_string(1_500), "1.5µs");
}

// ---------------------------------------------------------------------------------------
// Stream defaults and validation.

fn subject_token(subject: &str, n: usize) -> &str {
    subject.split('.').nth(n).unwrap_or_default()
}

/// nats-server's create path (standalone): decode, static metadata, handler checks,
/// config check, replicas check.
fn create_stream(
    s: &Sample,
    ctx: &StreamCheckContext,
    standalone: bool,
) -> Result<StreamConfig, ApiError> {
    let mut req =
        StreamConfigRequest::decode(&s.body, Mode::Strict).map_err(ApiError::invalid_json)?;
    set_static_stream_metadata(&mut req.config);
    check_stream_create_request(subject_token(&s.subject, 4), &req)?;
    let ctx = StreamCheckContext {
        pedantic: req.pedantic,
        ..*ctx
    };
    let cfg = check_stream_config(&req.config, &ctx)?;
    if standalone {
        check_stream_standalone_replicas(&cfg)?;
    }
    Ok(cfg)
}

/// nats-server's update path: config check, name check, static metadata, update check.
fn update_stream(s: &Sample, old: &StreamConfig) -> Result<StreamConfig, ApiError> {
    let req = StreamConfigRequest::decode(&s.body, Mode::Strict).map_err(ApiError::invalid_json)?;
    let ctx = StreamCheckContext {
        pedantic: req.pedantic,
        ..Default::default()
    };
    let mut cfg = check_stream_config(&req.config, &ctx)?;
    if subject_token(&s.subject, 4) != cfg.name {
        return Err(ApiError::stream_mismatch());
    }
    set_static_stream_metadata(&mut cfg);
    let cfg = check_stream_config(&cfg, &ctx)?;
    check_stream_update(old, cfg, true)
}

/// The config as the response shows it, compared both as JSON value and, by
/// re-serializing the whole response with our config in it, as bytes.
fn assert_config_matches(s: &Sample, cfg: &StreamConfig) {
    let payload = first_response(s);
    let want = json(payload);
    let ours = with_dynamic_stream_metadata(cfg);
    assert_eq!(
        serde_json::to_value(&ours).expect("value"),
        want["config"],
        "{}",
        s.file
    );
    let mut v = want.clone();
    v["config"] = serde_json::to_value(&ours).expect("value");
    let ty = want["type"].as_str().unwrap_or_default();
    let out = if ty == StreamCreateBody::TYPE {
        let mut r: ApiResponse<StreamCreateBody> = serde_json::from_str(payload).expect("parse");
        if let Some(info) = r.body.info.as_mut() {
            info.config = ours;
        }
        r.to_json()
    } else {
        let mut r: ApiResponse<StreamUpdateBody> = serde_json::from_str(payload).expect("parse");
        if let Some(info) = r.body.info.as_mut() {
            info.config = ours;
        }
        r.to_json()
    };
    assert_eq!(out, payload, "{}", s.file);
}

fn created_stream(name: &str) -> StreamConfig {
    let s = sample(name);
    create_stream(&s, &StreamCheckContext::default(), false)
        .unwrap_or_else(|e| panic!("{name}: {e}"))
}

#[test]
fn stream_create_fills_nats_server_defaults() {
    for name in [
        "stream_create_minimal",
        "stream_create_no_subjects",
        "stream_create_full",
        "stream_create_counter",
        "stream_create_discard_new_limits",
        "stream_create_interest",
        "stream_create_rollup",
        "stream_create_workqueue",
        "stream_create_idempotent_same_config",
        "limits_stream_ok_1",
        "limits_stream_ok_2",
        "limits_stream_ok_3",
        "limits_stream_max_bytes_unset_with_max_stream_bytes",
    ] {
        let s = sample(name);
        let cfg = create_stream(&s, &StreamCheckContext::default(), true)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_config_matches(&s, &cfg);
    }
    // Clustered: replicas 3 allowed.
    let s = sample("cluster_stream_create_r3");
    let cfg = create_stream(&s, &StreamCheckContext::default(), false).expect("r3");
    assert_config_matches(&s, &cfg);
}

/// The recorded mirror and sources creates pass natrium's checks as nats-server's
/// (local mirrors and sources are implemented, `sourcing`); what natrium refuses of them
/// (docs/compat.md, "Stream config fields natrium refuses") is only a subject mapping
/// function that does not compile: the config checks run first, so bad values still get
/// nats-server's errors.
#[test]
fn stream_create_unsupported_fields_are_refused() {
    for name in ["stream_create_mirror", "stream_create_sources"] {
        let s = sample(name);
        let cfg = create_stream(&s, &StreamCheckContext::default(), true)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_config_matches(&s, &cfg);
        assert_eq!(unsupported_stream_field(&cfg), None, "{name}");
        // Origins elsewhere (`external`) are implemented.
        let mut ext = cfg.clone();
        for link in ext.mirror.iter_mut().chain(ext.sources.iter_mut()) {
            link.external = Some(ExternalStream {
                api: "$JS.hub.API".into(),
                deliver: String::new(),
            });
        }
        assert_eq!(unsupported_stream_field(&ext), None, "{name}");
        // Links through a durable consumer, local or external, are implemented.
        for link in ext.mirror.iter_mut().chain(ext.sources.iter_mut()) {
            link.consumer = Some(StreamConsumerSource {
                name: "C".into(),
                deliver_subject: String::new(),
            });
        }
        assert_eq!(unsupported_stream_field(&ext), None, "{name}");
        assert!(check_stream_supported(&ext).is_ok(), "{name}");
    }
    // A counter stream sums the counters it sources (`counter::IncrValue::update`).
    let mut counted = created_stream("stream_create_sources");
    counted.allow_msg_counter = true;
    assert_eq!(unsupported_stream_field(&counted), None);
    // Defaults (what clients send when the feature is unused) pass; counters are
    // implemented.
    let cfg = created_stream("stream_create_full");
    assert_eq!(unsupported_stream_field(&cfg), None);
    assert_eq!(
        unsupported_stream_field(&created_stream("stream_create_counter")),
        None
    );
    assert!(check_stream_supported(&cfg).is_ok());
    // Subject transforms are implemented for wildcard mappings only.
    let tr = |dest: &str| StreamConfig {
        subject_transform: Some(SubjectTransform {
            src: "in.*".into(),
            dest: dest.into(),
        }),
        ..Default::default()
    };
    assert_eq!(unsupported_stream_field(&tr("out.{{wildcard(1)}}")), None);
    assert_eq!(unsupported_stream_field(&tr("out.$1")), None);
    let rp = StreamConfig {
        republish: Some(RePublish {
            dest: "rp.>".into(),
            ..Default::default()
        }),
        ..Default::default()
    };
    assert_eq!(unsupported_stream_field(&rp), None);
    // Mapping functions are applied; one that names no wildcard of the source is not.
    assert_eq!(
        unsupported_stream_field(&tr("out.{{partition(3,1)}}")),
        None
    );
    assert_eq!(
        unsupported_stream_field(&tr("out.{{partition(3,2)}}")),
        Some("subject_transform (this mapping function)")
    );
    assert_eq!(
        crate::jetstream::stream::transform_subject("in.*", "out.{{left(1,2)}}", "in.abc")
            .as_deref(),
        Some("out.ab")
    );
    assert_eq!(
        crate::jetstream::stream::transform_subject("in.*", "out.{{ Wildcard( 1 ) }}", "in.a")
            .as_deref(),
        Some("out.a")
    );
    assert_eq!(
        crate::jetstream::stream::transform_subject("in.*", "out.$1", "x.a"),
        None
    );
    let cfg = StreamConfig {
        republish: Some(RePublish {
            dest: "rp.{{partition(2,1)}}".into(),
            ..Default::default()
        }),
        ..Default::default()
    };
    assert_eq!(
        unsupported_stream_field(&cfg),
        Some("republish (this mapping function)")
    );
    // Atomic and fast batches and schedules are supported.
    let cfg = StreamConfig {
        allow_atomic: true,
        allow_batched: true,
        allow_msg_schedules: true,
        ..Default::default()
    };
    assert_eq!(unsupported_stream_field(&cfg), None);
}

#[test]
fn set_stream_config_defaults_alone_matches_minimal_samples() {
    for name in ["stream_create_minimal", "stream_create_no_subjects"] {
        let s = sample(name);
        let mut cfg = StreamConfigRequest::decode(&s.body, Mode::Strict)
            .expect("decode")
            .config;
        set_stream_config_defaults(&mut cfg);
        let mut want: StreamConfig =
            serde_json::from_value(json(first_response(&s))["config"].clone()).expect("config");
        want.metadata.clear();
        assert_eq!(cfg, want, "{name}");
    }
    // The duplicate window follows a shorter max_age.
    let mut cfg = StreamConfig {
        name: "A".into(),
        max_age: 30_000_000_000,
        ..Default::default()
    };
    set_stream_config_defaults(&mut cfg);
    assert_eq!(cfg.duplicate_window, 30_000_000_000);
    // Mirrors and sourcing streams get no duplicate window and no subjects.
    let mut cfg = StreamConfig {
        name: "M".into(),
        mirror: Some(StreamSource {
            name: "O".into(),
            ..Default::default()
        }),
        ..Default::default()
    };
    set_stream_config_defaults(&mut cfg);
    assert_eq!((cfg.duplicate_window, cfg.subjects.len()), (0, 0));
    // Delete markers force TTLs and rollups.
    let mut cfg = StreamConfig {
        name: "K".into(),
        subject_delete_marker_ttl: 2_000_000_000,
        deny_purge: true,
        ..Default::default()
    };
    set_stream_config_defaults(&mut cfg);
    assert!(cfg.allow_msg_ttl && cfg.allow_rollup_hdrs && !cfg.deny_purge);
}

#[test]
fn stream_update_samples() {
    let orders = created_stream("stream_create_minimal");
    let s = sample("stream_update_ok");
    let cfg = update_stream(&s, &orders).expect("update");
    assert_config_matches(&s, &cfg);

    let s = sample("stream_update_storage_change");
    let err = update_stream(&s, &orders).expect_err("storage change");
    assert_eq!(json(&to_go_json(&err)), json(first_response(&s))["error"]);

    let dn = created_stream("stream_create_discard_new_limits");
    let s = sample("stream_update_dn_bigger_msgs");
    let dn2 = update_stream(&s, &dn).expect("update");
    assert_config_matches(&s, &dn2);
    let s = sample("stream_create_sealed_update");
    let sealed = update_stream(&s, &dn2).expect("seal");
    assert_config_matches(&s, &sealed);
    assert!(sealed.deny_delete && sealed.deny_purge);
}

fn assert_error_sample(s: &Sample, got: Result<impl std::fmt::Debug, ApiError>) {
    let err = got.expect_err(&s.file);
    assert_eq!(
        json(&to_go_json(&err)),
        json(first_response(s))["error"],
        "{}",
        s.file
    );
}

#[test]
fn stream_create_errors_match_samples() {
    let ctx = StreamCheckContext::default();
    for name in [
        "stream_create_name_mismatch",
        "stream_create_empty_body",
        "stream_create_pedantic_unknown",
        "stream_create_replicas3_standalone",
        "stream_create_invalid_json_field_type",
    ] {
        let s = sample(name);
        assert_error_sample(&s, create_stream(&s, &ctx, true));
    }
    let s = sample("limits_max_bytes_required");
    let ctx = StreamCheckContext {
        max_bytes_required: true,
        ..Default::default()
    };
    assert_error_sample(&s, create_stream(&s, &ctx, true));
    let s = sample("limits_stream_max_stream_bytes_exceeded");
    let ctx = StreamCheckContext {
        max_stream_bytes: 1024 * 1024,
        ..Default::default()
    };
    assert_error_sample(&s, create_stream(&s, &ctx, true));
    // An unset max_bytes passes the max-stream-bytes check, as the capture shows.
    let s = sample("limits_stream_max_bytes_unset_with_max_stream_bytes");
    assert!(create_stream(&s, &ctx, true).is_ok());
}

#[test]
fn stream_validation_rules() {
    let check = |cfg: StreamConfig| check_stream_config(&cfg, &StreamCheckContext::default());
    let base = StreamConfig {
        name: "S".into(),
        subjects: vec!["s.>".into()],
        ..Default::default()
    };
    let desc = |r: Result<StreamConfig, ApiError>| r.err().map(|e| (e.err_code, e.description));
    let invalid = |text: &str| Some((10052, text.to_string()));

    assert_eq!(
        desc(check(StreamConfig {
            name: "a.b".into(),
            ..base.clone()
        })),
        invalid("stream name is required and can not contain '.', '*', '>', '\\', '/'")
    );
    assert_eq!(
        desc(check(StreamConfig {
            name: "x".repeat(256),
            ..base.clone()
        })),
        invalid("stream name is too long, maximum allowed is 255")
    );
    assert_eq!(
        desc(check(StreamConfig {
            max_age: 50_000_000,
            ..base.clone()
        })),
        invalid("max age needs to be >= 100ms")
    );
    assert_eq!(
        desc(check(StreamConfig {
            duplicate_window: 50_000_000,
            ..base.clone()
        })),
        invalid("duplicates window needs to be >= 100ms")
    );
    assert_eq!(
        desc(check(StreamConfig {
            max_age: 1_000_000_000,
            duplicate_window: 2_000_000_000,
            ..base.clone()
        })),
        invalid("duplicates window can not be larger then max age")
    );
    assert_eq!(
        desc(check(StreamConfig {
            discard_new_per_subject: true,
            ..base.clone()
        })),
        invalid("discard new per subject requires discard new policy to be set")
    );
    assert_eq!(
        desc(check(StreamConfig {
            discard_new_per_subject: true,
            discard: DiscardPolicy::New,
            ..base.clone()
        })),
        invalid("discard new per subject requires max msgs per subject > 0")
    );
    assert_eq!(
        desc(check(StreamConfig {
            allow_msg_counter: true,
            discard: DiscardPolicy::New,
            ..base.clone()
        })),
        invalid("counter stream cannot use discard new")
    );
    assert_eq!(
        desc(check(StreamConfig {
            allow_msg_counter: true,
            allow_msg_ttl: true,
            ..base.clone()
        })),
        invalid("counter stream cannot use message TTLs")
    );
    assert_eq!(
        desc(check(StreamConfig {
            allow_msg_counter: true,
            retention: RetentionPolicy::Interest,
            ..base.clone()
        })),
        invalid("counter stream can only use limits retention")
    );
    assert_eq!(
        desc(check(StreamConfig {
            deny_purge: true,
            allow_rollup_hdrs: true,
            ..base.clone()
        })),
        invalid("roll-ups require the purge permission")
    );
    assert_eq!(
        desc(check(StreamConfig {
            num_replicas: 6,
            ..base.clone()
        })),
        invalid("maximum replicas is 5")
    );
    assert_eq!(
        check(StreamConfig {
            num_replicas: -1,
            ..base.clone()
        })
        .err()
        .map(|e| e.err_code),
        Some(ErrorId::ReplicasCountCannotBeNegative.err_code())
    );
    assert_eq!(
        desc(check(StreamConfig {
            subjects: vec!["a.*".into(), "a.b".into()],
            ..base.clone()
        })),
        invalid("subject \"a.*\" overlaps with \"a.b\"")
    );
    // The pairwise overlap check fires before the duplicate check can (as in Go).
    assert_eq!(
        desc(check(StreamConfig {
            subjects: vec!["a".into(), "a".into()],
            ..base.clone()
        })),
        invalid("subject \"a\" overlaps with \"a\"")
    );
    assert_eq!(
        desc(check(StreamConfig {
            subjects: vec![">".into()],
            ..base.clone()
        })),
        invalid("capturing all subjects requires no-ack to be true")
    );
    assert_eq!(
        desc(check(StreamConfig {
            subjects: vec!["$JS.API.>".into()],
            ..base.clone()
        })),
        invalid("subjects that overlap with jetstream api require no-ack to be true")
    );
    assert!(
        check(StreamConfig {
            subjects: vec!["$JS.EVENT.ADVISORY.>".into()],
            ..base.clone()
        })
        .is_ok()
    );
    assert_eq!(
        desc(check(StreamConfig {
            subject_delete_marker_ttl: 500_000_000,
            ..base.clone()
        })),
        invalid("subject delete marker TTL must be at least 1 second")
    );
    assert_eq!(
        desc(check(StreamConfig {
            mirror: Some(StreamSource {
                name: "O".into(),
                ..Default::default()
            }),
            ..base.clone()
        })),
        Some((10034, "stream mirrors can not contain subjects".to_string()))
    );
    assert_eq!(
        desc(check(StreamConfig {
            placement: Some(Placement {
                preferred: "n1".into(),
                ..Default::default()
            }),
            ..base.clone()
        })),
        invalid("preferred server not permitted in placement")
    );
    let src = StreamSource {
        name: "O".into(),
        ..Default::default()
    };
    assert_eq!(
        check(StreamConfig {
            sources: vec![src.clone(), src.clone()],
            ..base.clone()
        })
        .err()
        .map(|e| e.err_code),
        Some(ErrorId::SourceDuplicateDetected.err_code())
    );
    assert_eq!(
        check(StreamConfig {
            persist_mode: PersistMode::Async,
            storage: StorageType::Memory,
            ..base.clone()
        })
        .err()
        .map(|e| e.description),
        Some("async persist mode is only supported on file storage".to_string())
    );
    // Pedantic mode refuses what it would otherwise adjust.
    let ped = StreamCheckContext {
        pedantic: true,
        ..Default::default()
    };
    let err = check_stream_config(
        &StreamConfig {
            max_msgs: -5,
            ..base.clone()
        },
        &ped,
    )
    .expect_err("pedantic");
    assert_eq!(
        (err.err_code, err.description.as_str()),
        (10157, "pedantic mode: max_msgs must be set to -1")
    );
    let server = StreamCheckContext {
        server: ServerLimits {
            duplicates: 60_000_000_000,
            ..Default::default()
        },
        ..Default::default()
    };
    assert_eq!(
        check_stream_config(&base, &server).map(|c| c.duplicate_window),
        Ok(60_000_000_000)
    );
    let err = check_stream_config(
        &StreamConfig {
            duplicate_window: 120_000_000_000,
            ..base.clone()
        },
        &server,
    )
    .expect_err("over server limit");
    assert_eq!(
        err.description,
        "duplicates window can not be larger then server limit of 1m0s"
    );

    // Update rules.
    let old = check(base.clone()).expect("base");
    let upd = |new: StreamConfig| {
        check_stream_update(&old, check(new).expect("valid"), true)
            .err()
            .map(|e| e.description)
    };
    assert_eq!(
        upd(StreamConfig {
            retention: RetentionPolicy::WorkQueue,
            ..base.clone()
        }),
        Some(
            "stream configuration update can not change retention policy to/from workqueue"
                .to_string()
        )
    );
    assert_eq!(
        upd(StreamConfig {
            allow_msg_counter: true,
            ..base.clone()
        }),
        Some("stream configuration update can not change message counter setting".to_string())
    );
    assert_eq!(upd(base.clone()), None);
    assert_eq!(
        check_stream_update(
            &old,
            StreamConfig {
                num_replicas: 3,
                ..old.clone()
            },
            true
        )
        .err()
        .map(|e| e.err_code),
        Some(10074)
    );
}

// ---------------------------------------------------------------------------------------
// Consumer defaults and validation.

/// nats-server's standalone create path minus state: decode, subject checks, replicas,
/// static metadata, defaults, checks, creation stamps.
fn create_consumer(
    s: &Sample,
    stream: &StreamConfig,
    account: &AccountLimits,
    standalone: bool,
) -> Result<ConsumerConfig, ApiError> {
    let mut req =
        CreateConsumerRequest::decode(&s.body, Mode::Strict).map_err(ApiError::invalid_json)?;
    let subject = ConsumerCreateSubject::parse(&s.subject).expect("subject");
    subject.check(&mut req)?;
    if standalone {
        check_consumer_standalone_replicas(&req.config)?;
    }
    set_static_consumer_metadata(&mut req.config);
    let server = ServerLimits::default();
    set_consumer_config_defaults(&mut req.config, stream, &server, account, req.pedantic)?;
    check_consumer_config(&req.config, &server, stream, account, false)?;
    finalize_new_consumer_config(&mut req.config);
    Ok(req.config)
}

fn assert_consumer_config_matches(s: &Sample, cfg: &ConsumerConfig) {
    let payload = first_response(s);
    let ours = with_dynamic_consumer_metadata(cfg);
    assert_eq!(
        serde_json::to_value(&ours).expect("value"),
        json(payload)["config"],
        "{}",
        s.file
    );
    let mut r: ApiResponse<ConsumerCreateBody> = serde_json::from_str(payload).expect("parse");
    if let Some(info) = r.body.info.as_mut() {
        info.config = Some(ours);
    }
    assert_eq!(r.to_json(), payload, "{}", s.file);
}

#[test]
fn consumer_create_fills_nats_server_defaults() {
    let orders = created_stream("stream_create_minimal");
    let wq = created_stream("stream_create_workqueue");
    let s1 = created_stream("limits_stream_ok_1");
    let r3 = created_stream("cluster_stream_create_r3");
    let unlimited = AccountLimits::default();
    let account_a = AccountLimits {
        max_memory: 1024 * 1024,
        max_storage: 2 * 1024 * 1024,
        max_streams: 3,
        max_consumers: 2,
        max_ack_pending: 100,
        ..AccountLimits::default()
    };
    let cases: &[(&str, &StreamConfig, &AccountLimits, bool)] = &[
        ("consumer_create_durable_pull", &orders, &unlimited, true),
        ("consumer_create_filtered", &orders, &unlimited, true),
        (
            "consumer_create_ephemeral_legacy",
            &orders,
            &unlimited,
            true,
        ),
        (
            "consumer_create_legacy_durable_subject",
            &orders,
            &unlimited,
            true,
        ),
        ("consumer_create_push", &orders, &unlimited, true),
        ("consumer_create_pinned", &orders, &unlimited, true),
        ("consumer_create_wq_1", &wq, &unlimited, true),
        ("limits_consumer_ok_1", &s1, &account_a, true),
        (
            "limits_consumer_default_max_ack_pending",
            &s1,
            &account_a,
            true,
        ),
        ("cluster_consumer_create_r3", &r3, &unlimited, false),
    ];
    for (name, stream, account, standalone) in cases {
        let s = sample(name);
        let cfg = create_consumer(&s, stream, account, *standalone)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_consumer_config_matches(&s, &cfg);
    }
}

#[test]
fn consumer_create_errors_match_samples() {
    let orders = created_stream("stream_create_minimal");
    let wq = created_stream("stream_create_workqueue");
    let s1 = created_stream("limits_stream_ok_1");
    let unlimited = AccountLimits::default();
    for name in [
        "consumer_create_bad_deliver_policy_combo",
        "consumer_create_name_mismatch",
        "consumer_create_stream_name_mismatch",
        "consumer_create_filter_mismatch",
    ] {
        let s = sample(name);
        assert_error_sample(&s, create_consumer(&s, &orders, &unlimited, true));
    }
    let s = sample("consumer_create_wq_ack_none");
    assert_error_sample(&s, create_consumer(&s, &wq, &unlimited, true));
    let account_a = AccountLimits {
        max_ack_pending: 100,
        ..AccountLimits::default()
    };
    let s = sample("limits_consumer_max_ack_pending_excess");
    assert_error_sample(&s, create_consumer(&s, &s1, &account_a, true));
    // The work-queue rule needs the other consumers: W1 (unfiltered) exists.
    let s = sample("consumer_create_wq_overlap");
    let cfg = create_consumer(&s, &wq, &unlimited, true).expect("config is fine");
    assert_error_sample(&s, check_workqueue_consumer(&cfg, &[vec![]]));
}

#[test]
fn consumer_validation_rules() {
    let stream = created_stream("stream_create_minimal");
    let server = ServerLimits::default();
    let acct = AccountLimits::default();
    let run = |mut cfg: ConsumerConfig| -> Result<ConsumerConfig, ApiError> {
        set_consumer_config_defaults(&mut cfg, &stream, &server, &acct, false)?;
        check_consumer_config(&cfg, &server, &stream, &acct, false)?;
        Ok(cfg)
    };
    let code = |r: Result<ConsumerConfig, ApiError>| r.err().map(|e| e.err_code);
    let pull = ConsumerConfig {
        durable_name: "D".into(),
        ack_policy: AckPolicy::Explicit,
        ..Default::default()
    };
    let ok = run(pull.clone()).expect("ok");
    assert_eq!(
        (
            ok.max_deliver,
            ok.ack_wait,
            ok.max_waiting,
            ok.max_ack_pending
        ),
        (-1, DEFAULT_ACK_WAIT, 512, 1000)
    );
    let push = ConsumerConfig {
        deliver_subject: "out".into(),
        ..pull.clone()
    };
    let ok = run(push.clone()).expect("push");
    assert_eq!(ok.max_waiting, 0);
    assert_eq!(
        code(run(ConsumerConfig {
            deliver_subject: "orders.x".into(),
            ..pull.clone()
        })),
        Some(ErrorId::ConsumerDeliverCycle.err_code())
    );
    assert_eq!(
        code(run(ConsumerConfig {
            deliver_subject: "out.*".into(),
            ..pull.clone()
        })),
        Some(ErrorId::ConsumerDeliverToWildcards.err_code())
    );
    assert_eq!(
        code(run(ConsumerConfig {
            idle_heartbeat: 1_000_000_000,
            ..pull.clone()
        })),
        Some(ErrorId::ConsumerHbRequiresPush.err_code())
    );
    assert_eq!(
        code(run(ConsumerConfig {
            flow_control: true,
            ..push.clone()
        })),
        Some(ErrorId::ConsumerWithFlowControlNeedsHeartbeats.err_code())
    );
    assert_eq!(
        code(run(ConsumerConfig {
            backoff: vec![1_000_000_000, 2_000_000_000],
            max_deliver: 1,
            ..pull.clone()
        })),
        Some(ErrorId::ConsumerMaxDeliverBackoff.err_code())
    );
    let b = run(ConsumerConfig {
        backoff: vec![5_000_000_000],
        ..pull.clone()
    })
    .expect("backoff");
    assert_eq!(b.ack_wait, 5_000_000_000);
    assert_eq!(
        code(run(ConsumerConfig {
            filter_subject: "a".into(),
            filter_subjects: vec!["b".into()],
            ..pull.clone()
        })),
        Some(ErrorId::ConsumerDuplicateFilterSubjects.err_code())
    );
    assert_eq!(
        code(run(ConsumerConfig {
            filter_subjects: vec!["a.>".into(), "a.b".into()],
            ..pull.clone()
        })),
        Some(ErrorId::ConsumerOverlappingSubjectFilters.err_code())
    );
    assert_eq!(
        run(ConsumerConfig {
            deliver_policy: DeliverPolicy::LastPerSubject,
            ..pull.clone()
        })
        .err()
        .map(|e| e.description),
        Some("consumer delivery policy is deliver last per subject, but optional filter subject is not set".into())
    );
    assert_eq!(
        code(run(ConsumerConfig {
            priority_groups: vec!["g".into()],
            ..pull.clone()
        })),
        Some(ErrorId::ConsumerPriorityGroupWithPolicyNone.err_code())
    );
    assert_eq!(
        code(run(ConsumerConfig {
            priority_policy: PriorityPolicy::Overflow,
            priority_groups: vec!["bad group".into()],
            ..pull.clone()
        })),
        Some(ErrorId::ConsumerInvalidGroupName.err_code())
    );
    let pinned = run(ConsumerConfig {
        priority_policy: PriorityPolicy::PinnedClient,
        priority_groups: vec!["g1".into()],
        ..pull.clone()
    })
    .expect("pinned");
    assert_eq!(pinned.priority_timeout, DEFAULT_PINNED_TTL);
    assert_eq!(
        run(ConsumerConfig {
            sample_freq: "x%".into(),
            ..pull.clone()
        })
        .err()
        .map(|e| e.description),
        Some("failed to parse consumer sampling configuration: strconv.Atoi: parsing \"x\": invalid syntax".into())
    );
    let fc = run(ConsumerConfig {
        ack_policy: AckPolicy::FlowControl,
        ..push.clone()
    })
    .expect("flow control");
    assert!(fc.flow_control && fc.idle_heartbeat == FLOW_CONTROL_HEARTBEAT);
    // Stream consumer limits feed the defaults and cap the values.
    let limited = StreamConfig {
        consumer_limits: super::stream::ConsumerLimits {
            inactive_threshold: 60_000_000_000,
            max_ack_pending: 10,
        },
        ..stream.clone()
    };
    let mut cfg = pull.clone();
    set_consumer_config_defaults(&mut cfg, &limited, &server, &acct, false).expect("defaults");
    assert_eq!(
        (cfg.max_ack_pending, cfg.inactive_threshold),
        (10, 60_000_000_000)
    );
    let mut cfg = ConsumerConfig {
        inactive_threshold: 120_000_000_000,
        ..pull.clone()
    };
    set_consumer_config_defaults(&mut cfg, &limited, &server, &acct, false).expect("defaults");
    assert_eq!(
        check_consumer_config(&cfg, &server, &limited, &acct, false)
            .err()
            .map(|e| e.description),
        Some("consumer inactive threshold exceeds system limit of 1m0s".into())
    );
    // Pedantic refuses adjustments.
    let mut cfg = ConsumerConfig {
        max_deliver: -3,
        ..pull.clone()
    };
    let err = set_consumer_config_defaults(&mut cfg, &stream, &server, &acct, true)
        .expect_err("pedantic");
    assert_eq!(
        err.description,
        "pedantic mode: max_deliver must be set to -1"
    );
    // Ephemerals get 5s of inactivity when created.
    let mut eph = ConsumerConfig::default();
    finalize_new_consumer_config(&mut eph);
    assert_eq!(eph.inactive_threshold, DEFAULT_INACTIVE_THRESHOLD);
    let mut dur = pull.clone();
    finalize_new_consumer_config(&mut dur);
    assert_eq!(dur.inactive_threshold, 0);
    // Work-queue partitioning.
    assert!(partition_unique(&["a.b".into()], &[vec!["a.c".into()]]));
    assert!(!partition_unique(&["a.*".into()], &[vec!["a.c".into()]]));
}

#[test]
fn consumer_create_subject_forms() {
    let mut req = CreateConsumerRequest {
        stream_name: "S".into(),
        ..Default::default()
    };
    assert_eq!(ConsumerCreateSubject::parse("$JS.API.CONSUMER"), None);
    let legacy = ConsumerCreateSubject::parse("$JS.API.CONSUMER.CREATE.S").expect("legacy");
    req.config.durable_name = "D".into();
    assert_eq!(
        legacy.check(&mut req).err().map(|e| e.err_code),
        Some(ErrorId::ConsumerEphemeralWithDurableName.err_code())
    );
    let durable =
        ConsumerCreateSubject::parse("$JS.API.CONSUMER.DURABLE.CREATE.S.D").expect("durable");
    assert_eq!(durable.check(&mut req), Ok(()));
    assert_eq!(req.config.name, "D");
    let bad =
        ConsumerCreateSubject::parse("$JS.API.CONSUMER.DURABLE.CREATE.S.D.x").expect("durable");
    assert_eq!(
        bad.check(&mut req).err().map(|e| e.err_code),
        Some(ErrorId::ConsumerDurableNameNotInSubject.err_code())
    );
    let filtered =
        ConsumerCreateSubject::parse("$JS.API.CONSUMER.CREATE.S.C.a.b").expect("filtered");
    let mut req = CreateConsumerRequest {
        stream_name: "S".into(),
        config: ConsumerConfig {
            filter_subject: "a.b".into(),
            ..Default::default()
        },
        ..Default::default()
    };
    assert_eq!(filtered.check(&mut req), Ok(()));
    assert_eq!(req.config.name, "C");
}

fn adhoc(subject: &str, body: &str) -> Sample {
    Sample {
        file: format!("{subject} {body}"),
        subject: subject.to_string(),
        body: body.as_bytes().to_vec(),
        responses: Vec::new(),
    }
}

/// Stream create requests and nats-server 2.15.1's answers, recorded live (standalone).
#[test]
fn stream_create_errors_recorded_live() {
    let long = format!(r#"{{"name":"V","description":"{}"}}"#, "x".repeat(4097));
    let cases: &[(&str, &str)] = &[
        (
            r#"{"name":"V","subjects":["a","a"]}"#,
            r#"{"code":500,"err_code":10052,"description":"subject \"a\" overlaps with \"a\""}"#,
        ),
        (
            r#"{"name":"V","subjects":["a.*","a.b"]}"#,
            r#"{"code":500,"err_code":10052,"description":"subject \"a.*\" overlaps with \"a.b\""}"#,
        ),
        (
            r#"{"name":"V","subjects":[">"]}"#,
            r#"{"code":500,"err_code":10052,"description":"capturing all subjects requires no-ack to be true"}"#,
        ),
        (
            r#"{"name":"V","subjects":["$JS.API.>"]}"#,
            r#"{"code":500,"err_code":10052,"description":"subjects that overlap with jetstream api require no-ack to be true"}"#,
        ),
        (
            r#"{"name":"V","max_age":50000000}"#,
            r#"{"code":500,"err_code":10052,"description":"max age needs to be >= 100ms"}"#,
        ),
        (
            r#"{"name":"V","duplicate_window":50000000}"#,
            r#"{"code":500,"err_code":10052,"description":"duplicates window needs to be >= 100ms"}"#,
        ),
        (
            r#"{"name":"V","max_age":1000000000,"duplicate_window":2000000000}"#,
            r#"{"code":500,"err_code":10052,"description":"duplicates window can not be larger then max age"}"#,
        ),
        (
            r#"{"name":"V","discard_new_per_subject":true}"#,
            r#"{"code":500,"err_code":10052,"description":"discard new per subject requires discard new policy to be set"}"#,
        ),
        (
            r#"{"name":"V","discard_new_per_subject":true,"discard":"new"}"#,
            r#"{"code":500,"err_code":10052,"description":"discard new per subject requires max msgs per subject > 0"}"#,
        ),
        (
            r#"{"name":"V","allow_msg_counter":true,"discard":"new"}"#,
            r#"{"code":500,"err_code":10052,"description":"counter stream cannot use discard new"}"#,
        ),
        (
            r#"{"name":"V","allow_msg_counter":true,"allow_msg_ttl":true}"#,
            r#"{"code":500,"err_code":10052,"description":"counter stream cannot use message TTLs"}"#,
        ),
        (
            r#"{"name":"V","allow_msg_counter":true,"retention":"interest"}"#,
            r#"{"code":500,"err_code":10052,"description":"counter stream can only use limits retention"}"#,
        ),
        (
            r#"{"name":"V","deny_purge":true,"allow_rollup_hdrs":true}"#,
            r#"{"code":500,"err_code":10052,"description":"roll-ups require the purge permission"}"#,
        ),
        (
            r#"{"name":"V","num_replicas":6}"#,
            r#"{"code":500,"err_code":10052,"description":"maximum replicas is 5"}"#,
        ),
        (
            r#"{"name":"V","num_replicas":-1}"#,
            r#"{"code":400,"err_code":10133,"description":"replicas count cannot be negative"}"#,
        ),
        (
            r#"{"name":"V","subject_delete_marker_ttl":500000000}"#,
            r#"{"code":500,"err_code":10052,"description":"subject delete marker TTL must be at least 1 second"}"#,
        ),
        (
            r#"{"name":"V","mirror":{"name":"O"},"subjects":["x"]}"#,
            r#"{"code":400,"err_code":10034,"description":"stream mirrors can not contain subjects"}"#,
        ),
        (
            r#"{"name":"V","placement":{"preferred":"n1"}}"#,
            r#"{"code":500,"err_code":10052,"description":"preferred server not permitted in placement"}"#,
        ),
        (
            r#"{"name":"V","sources":[{"name":"O"},{"name":"O"}]}"#,
            r#"{"code":400,"err_code":10140,"description":"duplicate source configuration detected"}"#,
        ),
        (
            r#"{"name":"V","persist_mode":"async","storage":"memory"}"#,
            r#"{"code":500,"err_code":10052,"description":"async persist mode is only supported on file storage"}"#,
        ),
        (
            r#"{"name":"V","max_msgs":-5,"pedantic":true}"#,
            r#"{"code":400,"err_code":10157,"description":"pedantic mode: max_msgs must be set to -1"}"#,
        ),
        (
            r#"{"name":"V","sealed":true}"#,
            r#"{"code":500,"err_code":10052,"description":"stream configuration for create can not be sealed"}"#,
        ),
        (
            r#"{"name":"V","mirror_direct":true}"#,
            r#"{"code":500,"err_code":10052,"description":"stream has no mirror but does have mirror direct"}"#,
        ),
        (
            r#"{"name":"V","subjects":["v.>"],"republish":{"src":"v.>","dest":"v.x"}}"#,
            r#"{"code":500,"err_code":10052,"description":"stream configuration for republish destination forms a cycle"}"#,
        ),
        (
            r#"{"name":"V","subject_transform":{"src":"a..b","dest":"x"}}"#,
            r#"{"code":400,"err_code":10155,"description":"stream transform source: invalid subject a..b"}"#,
        ),
        (
            r#"{"name":"V","mirror":{"name":"O","external":{"api":"$JS.API","deliver":"d"}}}"#,
            r#"{"code":400,"err_code":10021,"description":"stream external api prefix $JS.API must not overlap with $JS.API"}"#,
        ),
        (
            r#"{"name":"V","mirror":{"name":"O","external":{"api":"x.*","deliver":"d"}}}"#,
            r#"{"code":500,"err_code":10052,"description":"stream external api prefix \"x.*\" must be a valid subject without wildcards"}"#,
        ),
        (
            r#"{"name":"V","sources":[{"name":"O","external":{"api":"a","deliver":"d.*"}}]}"#,
            r#"{"code":400,"err_code":10024,"description":"stream external delivery prefix d.* must not contain wildcards"}"#,
        ),
        (
            &long,
            r#"{"code":500,"err_code":10052,"description":"stream description is too long, maximum allowed is 4096"}"#,
        ),
    ];
    for (body, want) in cases {
        let s = adhoc("$JS.API.STREAM.CREATE.V", body);
        let err = create_stream(&s, &StreamCheckContext::default(), true).expect_err(body);
        assert_eq!(json(&to_go_json(&err)), json(want), "{body}");
    }
    let ok = |body: &str| {
        create_stream(
            &adhoc("$JS.API.STREAM.CREATE.V", body),
            &StreamCheckContext::default(),
            true,
        )
        .expect(body)
    };
    let c = ok(r#"{"name":"V","subject_delete_marker_ttl":2000000000,"deny_purge":true}"#);
    assert!(c.allow_msg_ttl && c.allow_rollup_hdrs && !c.deny_purge);
    let c = ok(r#"{"name":"V","allow_msg_schedules":true}"#);
    assert!(!c.allow_msg_ttl && c.allow_rollup_hdrs);
    let c = ok(r#"{"name":"V","republish":{"dest":"r.>"}}"#);
    assert_eq!(c.republish.map(|r| r.src), Some(">".to_string()));
    assert_eq!(ok(r#"{"name":"V","max_consumers":-7}"#).max_consumers, -1);
}

/// Consumer create requests and nats-server 2.15.1's answers, recorded live
/// (standalone; stream S on `s.>`, stream L with consumer limits 60s / 10).
#[test]
fn consumer_create_errors_recorded_live() {
    let s_stream = StreamConfig {
        name: "S".into(),
        subjects: vec!["s.>".into()],
        ..Default::default()
    };
    let s_stream = check_stream_config(&s_stream, &StreamCheckContext::default()).expect("S");
    let l_stream = StreamConfig {
        name: "L".into(),
        subjects: vec!["l.>".into()],
        consumer_limits: super::stream::ConsumerLimits {
            inactive_threshold: 60_000_000_000,
            max_ack_pending: 10,
        },
        ..Default::default()
    };
    let l_stream = check_stream_config(&l_stream, &StreamCheckContext::default()).expect("L");
    let long = format!(
        r#"{{"stream_name":"S","config":{{"durable_name":"D","ack_policy":"explicit","description":"{}"}}}}"#,
        "x".repeat(4097)
    );
    let cases: &[(&str, &str)] = &[
        (
            r#"{"stream_name":"S","config":{"durable_name":"D","ack_policy":"explicit","deliver_subject":"s.x"}}"#,
            r#"{"code":400,"err_code":10081,"description":"consumer deliver subject forms a cycle"}"#,
        ),
        (
            r#"{"stream_name":"S","config":{"durable_name":"D","ack_policy":"explicit","deliver_subject":"out.*"}}"#,
            r#"{"code":400,"err_code":10079,"description":"consumer deliver subject has wildcards"}"#,
        ),
        (
            r#"{"stream_name":"S","config":{"durable_name":"D","ack_policy":"explicit","idle_heartbeat":1000000000}}"#,
            r#"{"code":400,"err_code":10088,"description":"consumer idle heartbeat requires a push based consumer"}"#,
        ),
        (
            r#"{"stream_name":"S","config":{"durable_name":"D","ack_policy":"explicit","deliver_subject":"out","flow_control":true}}"#,
            r#"{"code":400,"err_code":10108,"description":"consumer with flow control also needs heartbeats"}"#,
        ),
        (
            r#"{"stream_name":"S","config":{"durable_name":"D","ack_policy":"explicit","backoff":[1000000000,2000000000],"max_deliver":1}}"#,
            r#"{"code":400,"err_code":10116,"description":"max deliver is required to be > length of backoff values"}"#,
        ),
        (
            r#"{"stream_name":"S","config":{"durable_name":"D","ack_policy":"explicit","filter_subject":"a","filter_subjects":["b"]}}"#,
            r#"{"code":400,"err_code":10136,"description":"consumer cannot have both FilterSubject and FilterSubjects specified"}"#,
        ),
        (
            r#"{"stream_name":"S","config":{"durable_name":"D","ack_policy":"explicit","filter_subjects":["a.>","a.b"]}}"#,
            r#"{"code":400,"err_code":10138,"description":"consumer subject filters cannot overlap"}"#,
        ),
        (
            r#"{"stream_name":"S","config":{"durable_name":"D","ack_policy":"explicit","deliver_policy":"last_per_subject"}}"#,
            r#"{"code":400,"err_code":10094,"description":"consumer delivery policy is deliver last per subject, but optional filter subject is not set"}"#,
        ),
        (
            r#"{"stream_name":"S","config":{"durable_name":"D","ack_policy":"explicit","priority_groups":["g"]}}"#,
            r#"{"code":400,"err_code":10196,"description":"consumer can not have priority groups when policy is none"}"#,
        ),
        (
            r#"{"stream_name":"S","config":{"durable_name":"D","ack_policy":"explicit","priority_policy":"overflow","priority_groups":["bad group"]}}"#,
            r#"{"code":400,"err_code":10162,"description":"Valid priority group name must match A-Z, a-z, 0-9, -_/=)+ and may not exceed 16 characters"}"#,
        ),
        (
            r#"{"stream_name":"S","config":{"durable_name":"D","ack_policy":"explicit","sample_freq":"x%"}}"#,
            r#"{"code":400,"err_code":10095,"description":"failed to parse consumer sampling configuration: strconv.Atoi: parsing \"x\": invalid syntax"}"#,
        ),
        (
            r#"{"stream_name":"S","config":{"durable_name":"D","ack_policy":"explicit","sample_freq":"-5"}}"#,
            r#"{"code":400,"err_code":10095,"description":"failed to parse consumer sampling configuration: <nil>"}"#,
        ),
        (
            r#"{"stream_name":"L","config":{"durable_name":"D","ack_policy":"explicit","inactive_threshold":120000000000}}"#,
            r#"{"code":400,"err_code":10153,"description":"consumer inactive threshold exceeds system limit of 1m0s"}"#,
        ),
        (
            r#"{"stream_name":"L","config":{"durable_name":"D","ack_policy":"explicit","max_ack_pending":20}}"#,
            r#"{"code":400,"err_code":10121,"description":"consumer max ack pending exceeds system limit of 10"}"#,
        ),
        (
            r#"{"stream_name":"S","config":{"durable_name":"D","ack_policy":"explicit","max_deliver":-3},"pedantic":true}"#,
            r#"{"code":400,"err_code":10157,"description":"pedantic mode: max_deliver must be set to -1"}"#,
        ),
        (
            r#"{"stream_name":"S","config":{"durable_name":"D","ack_policy":"explicit","num_replicas":3}}"#,
            r#"{"code":500,"err_code":10074,"description":"replicas > 1 not supported in non-clustered mode"}"#,
        ),
        (
            r#"{"stream_name":"S","config":{"durable_name":"D","ack_policy":"explicit","deliver_policy":"by_start_time"}}"#,
            r#"{"code":400,"err_code":10094,"description":"consumer delivery policy is deliver by start time, but optional start time is not set"}"#,
        ),
        (
            r#"{"stream_name":"S","config":{"durable_name":"D","ack_policy":"explicit","opt_start_seq":5}}"#,
            r#"{"code":400,"err_code":10094,"description":"consumer delivery policy is deliver all, but optional start sequence is also set"}"#,
        ),
        (
            r#"{"stream_name":"S","config":{"durable_name":"D","ack_policy":"explicit","max_expires":500000}}"#,
            r#"{"code":400,"err_code":10115,"description":"consumer max request expires needs to be >= 1ms"}"#,
        ),
        (
            &long,
            r#"{"code":400,"err_code":10107,"description":"consumer description is too long, maximum allowed is 4096"}"#,
        ),
    ];
    let unlimited = AccountLimits::default();
    for (body, want) in cases {
        let stream = if body.contains(r#""stream_name":"L""#) {
            &l_stream
        } else {
            &s_stream
        };
        let subject = format!("$JS.API.CONSUMER.CREATE.{}.D", stream.name);
        let err =
            create_consumer(&adhoc(&subject, body), stream, &unlimited, true).expect_err(body);
        assert_eq!(json(&to_go_json(&err)), json(want), "{body}");
    }
    // The subject's name wins over the body's.
    let c = create_consumer(
        &adhoc("$JS.API.CONSUMER.CREATE.S.D", r#"{"stream_name":"S","config":{"durable_name":"D","name":"E","ack_policy":"explicit"}}"#),
        &s_stream,
        &unlimited,
        true,
    )
    .expect("ok");
    assert_eq!(c.name, "D");
    // Flow-control acks: no ack_wait, forced heartbeat, API level 4.
    let c = create_consumer(
        &adhoc("$JS.API.CONSUMER.CREATE.S.D", r#"{"stream_name":"S","config":{"durable_name":"D","ack_policy":"flow_control","deliver_subject":"out"}}"#),
        &s_stream,
        &unlimited,
        true,
    )
    .expect("ok");
    assert_eq!(
        to_go_json(&with_dynamic_consumer_metadata(&c)),
        r#"{"durable_name":"D","name":"D","deliver_policy":"all","ack_policy":"flow_control","max_deliver":-1,"replay_policy":"instant","max_ack_pending":1000,"flow_control":true,"deliver_subject":"out","idle_heartbeat":1000000000,"num_replicas":0,"metadata":{"_nats.level":"5","_nats.req.level":"4","_nats.ver":"2.15.1"}}"#
    );
}

#[test]
fn go_escaping_of_output() {
    #[derive(Serialize)]
    struct T {
        s: &'static str,
    }
    assert_eq!(
        to_go_json(&T {
            s: "a>b<c&d\u{2028}\u{2029}\u{7}é"
        }),
        r#"{"s":"a\u003eb\u003cc\u0026d\u2028\u2029\u0007é"}"#
    );
}
