//! `/v1/instances`: the lifecycle of instances, as `volt run -d`, `ps`,
//! `stop`, `start`, `rm` and `logs` do it (the same code, in the volt library).
use std::collections::BTreeMap;
use std::time::Duration;

use axum::body::Body;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use optivolt_volt::instance::{alive, Db, Instance, State};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::error::{blocking, json_body, ApiError, Problem};

/// An instance.
#[derive(Debug, Serialize, ToSchema)]
pub struct InstanceView {
    pub id: String,
    pub name: String,
    /// The image (or program) it runs.
    pub image: String,
    /// Its `volt run` arguments.
    pub args: Vec<String>,
    /// stopped, starting, running, stopping, standby (Unikraft Cloud's names).
    pub state: String,
    /// volt's own state: created, running, restarting, exited, dead, standby.
    pub volt_state: String,
    /// As `volt ps` says it, e.g. "Up 5 minutes", "Exited (0) 2 seconds ago".
    pub status: String,
    pub ports: Vec<String>,
    /// no, always, on-failure[:N].
    pub restart: String,
    pub restarts: u32,
    /// Seconds since the epoch.
    pub created: i64,
    pub started: Option<i64>,
    pub finished: Option<i64>,
    pub exit_code: Option<i32>,
    /// The supervisor's PID while it runs.
    pub supervisor_pid: Option<i32>,
    /// The PID of the VM's monitor while it runs.
    pub pid: Option<i32>,
    /// Host CPU seconds of the monitor process.
    pub cpu_seconds: Option<f64>,
    /// Its resident memory.
    pub memory_bytes: Option<u64>,
}

/// The state names of Unikraft Cloud.
pub fn cloud_state(i: &Instance) -> &'static str {
    match i.state {
        State::Created | State::Restarting => "starting",
        State::Running if i.stopping => "stopping",
        State::Running => "running",
        State::Exited | State::Dead => "stopped",
        State::Standby => "standby",
    }
}

pub fn view(i: &Instance) -> InstanceView {
    let s = optivolt_volt::instances::Shown::of(i);
    InstanceView {
        id: s.id,
        name: s.name,
        image: s.image,
        args: s.args,
        state: cloud_state(i).into(),
        volt_state: s.state,
        status: s.status,
        ports: s.ports,
        restart: s.restart,
        restarts: s.restarts,
        created: s.created,
        started: s.started,
        finished: s.finished,
        exit_code: s.exit_code,
        supervisor_pid: s.supervisor_pid,
        pid: s.pid,
        cpu_seconds: s.cpu_seconds,
        memory_bytes: s.memory_bytes,
    }
}

/// A new instance of an image in the store, or restored from a snapshot.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateInstance {
    /// Default: made from the image's (or the snapshot file's) name.
    pub name: Option<String>,
    /// An image in the store (`GET /v1/images`; `POST /v1/images/pull`).
    pub image: Option<String>,
    /// Instead of `image`: a snapshot file on voltd's host (absolute path;
    /// `POST /v1/instances/{name}/snapshot` writes one). Only `name`,
    /// `ports` and `restart` apply then.
    pub snapshot: Option<String>,
    /// Replace the image's command.
    #[serde(default)]
    pub args: Vec<String>,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Guest RAM, e.g. `128M`.
    pub memory: Option<String>,
    /// `[HOST_IP:]HOST_PORT:GUEST_PORT[/tcp|/udp]`.
    #[serde(default)]
    pub ports: Vec<String>,
    /// no, always, on-failure[:N].
    pub restart: Option<String>,
    /// `SRC:DST[:ro]` (a host directory or a named volume).
    #[serde(default)]
    pub volumes: Vec<String>,
    /// A volt network to join.
    pub network: Option<String>,
}

pub(super) fn find(name: &str) -> Result<(Db, Instance), ApiError> {
    let mut db = Db::open_default()?;
    let i = db.find(name)?;
    Ok((db, i))
}

#[utoipa::path(get, path = "/v1/instances", operation_id = "list_instances", responses((status = 200, body = [InstanceView])))]
pub async fn list() -> Result<Json<Vec<InstanceView>>, ApiError> {
    blocking(|| {
        let mut db = Db::open_default()?;
        Ok(Json(db.list()?.iter().map(view).collect()))
    })
    .await
}

#[utoipa::path(
    post, path = "/v1/instances", operation_id = "create_instance", request_body = CreateInstance,
    responses(
        (status = 201, body = InstanceView),
        (status = 400, body = Problem), (status = 404, body = Problem, description = "no such image"),
        (status = 409, body = Problem, description = "the name is in use"), (status = 413, body = Problem),
    )
)]
pub async fn create(
    body: Result<Json<CreateInstance>, JsonRejection>,
) -> Result<Response, ApiError> {
    let c = json_body(body)?;
    blocking(move || {
        let image = match (&c.image, &c.snapshot) {
            (Some(i), None) => i.clone(),
            (None, Some(_)) => return super::snapshots::create_restored(&c),
            _ => {
                return Err(ApiError::bad_request(
                    "give exactly one of image and snapshot",
                ))
            }
        };
        let store = optivolt_volt::store::Store::open_default()?;
        if store.find(&image)?.is_none() {
            return Err(ApiError::not_found(format!(
                "no such image: {image} (POST /v1/images/pull first)"
            )));
        }
        let mut a: Vec<String> = vec!["-d".into()];
        let mut opt = |k: &str, v: String| {
            a.push(k.into());
            a.push(v);
        };
        if let Some(n) = &c.name {
            opt("--name", n.clone());
        }
        if let Some(m) = &c.memory {
            opt("--memory", m.clone());
        }
        for (k, v) in &c.env {
            opt("--env", format!("{k}={v}"));
        }
        for p in &c.ports {
            opt("--publish", p.clone());
        }
        if let Some(r) = &c.restart {
            opt("--restart", r.clone());
        }
        for v in &c.volumes {
            opt("--volume", v.clone());
        }
        if let Some(n) = &c.network {
            opt("--network", n.clone());
        }
        a.push(image);
        a.extend(c.args.iter().cloned());
        let args =
            optivolt_volt::run::parse_args(&a).map_err(|e| ApiError::bad_request(e.to_string()))?;
        let id = optivolt_volt::run::detach(&args)?;
        // A DELETE at the same moment may have removed it already.
        let (_, i) = find(&id)
            .map_err(|_| ApiError::conflict(format!("{id} was removed while it started")))?;
        Ok((StatusCode::CREATED, Json(view(&i))).into_response())
    })
    .await
}

#[utoipa::path(get, path = "/v1/instances/{name}", operation_id = "get_instance", params(("name" = String, Path, description = "name or ID")),
    responses((status = 200, body = InstanceView), (status = 404, body = Problem)))]
pub async fn get_one(Path(name): Path<String>) -> Result<Json<InstanceView>, ApiError> {
    blocking(move || Ok(Json(view(&find(&name)?.1)))).await
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct RemoveQuery {
    /// Remove a running instance too (it is stopped at once).
    #[serde(default)]
    pub force: bool,
}

#[utoipa::path(delete, path = "/v1/instances/{name}", operation_id = "delete_instance", params(("name" = String, Path), RemoveQuery),
    responses((status = 204), (status = 404, body = Problem), (status = 409, body = Problem, description = "running, without force")))]
pub async fn remove(
    Path(name): Path<String>,
    Query(q): Query<RemoveQuery>,
) -> Result<StatusCode, ApiError> {
    blocking(move || {
        let (mut db, i) = find(&name)?;
        if alive(i.supervisor) && !q.force {
            return Err(ApiError::conflict(format!(
                "{} is running: stop it first, or DELETE with ?force=true",
                i.name
            )));
        }
        optivolt_volt::instances::remove_one(&mut db, &i)?;
        Ok(StatusCode::NO_CONTENT)
    })
    .await
}

#[utoipa::path(post, path = "/v1/instances/{name}/start", operation_id = "start_instance", params(("name" = String, Path)),
    responses((status = 200, body = InstanceView), (status = 404, body = Problem)))]
pub async fn start(Path(name): Path<String>) -> Result<Json<InstanceView>, ApiError> {
    blocking(move || {
        let (mut db, i) = find(&name)?;
        optivolt_volt::instances::start_one(&mut db, &i)?;
        Ok(Json(view(&find(&i.id)?.1)))
    })
    .await
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct StopQuery {
    /// Seconds between SIGTERM and SIGKILL (default 10).
    pub timeout: Option<u64>,
}

impl StopQuery {
    /// The grace time asked for, capped at 5 minutes.
    fn grace(&self) -> Duration {
        Duration::from_secs(self.timeout.unwrap_or(10).min(300))
    }
}

#[utoipa::path(post, path = "/v1/instances/{name}/stop", operation_id = "stop_instance", params(("name" = String, Path), StopQuery),
    responses((status = 200, body = InstanceView), (status = 404, body = Problem)))]
pub async fn stop(
    Path(name): Path<String>,
    Query(q): Query<StopQuery>,
) -> Result<Json<InstanceView>, ApiError> {
    blocking(move || {
        let (mut db, i) = find(&name)?;
        optivolt_volt::instances::stop_one(&mut db, &i, q.grace())?;
        Ok(Json(view(&find(&i.id)?.1)))
    })
    .await
}

#[utoipa::path(post, path = "/v1/instances/{name}/restart", operation_id = "restart_instance", params(("name" = String, Path), StopQuery),
    responses((status = 200, body = InstanceView), (status = 404, body = Problem)))]
pub async fn restart(
    Path(name): Path<String>,
    Query(q): Query<StopQuery>,
) -> Result<Json<InstanceView>, ApiError> {
    blocking(move || {
        let (mut db, i) = find(&name)?;
        optivolt_volt::instances::stop_one(&mut db, &i, q.grace())?;
        let (mut db, fresh) = find(&i.id)?;
        optivolt_volt::instances::start_one(&mut db, &fresh)?;
        Ok(Json(view(&find(&i.id)?.1)))
    })
    .await
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct LogsQuery {
    /// Keep the response open and send lines as they come, until the instance ends.
    #[serde(default)]
    pub follow: bool,
    /// Only the last N lines (before following).
    pub tail: Option<usize>,
}

#[utoipa::path(get, path = "/v1/instances/{name}/logs", operation_id = "instance_logs", params(("name" = String, Path), LogsQuery),
    responses((status = 200, description = "one JSON object per line: t (ns since the epoch), s (stdout or stderr), l (the line)", content_type = "application/x-ndjson"),
        (status = 404, body = Problem)))]
pub async fn logs(
    Path(name): Path<String>,
    Query(q): Query<LogsQuery>,
) -> Result<Response, ApiError> {
    let (dir, id) = blocking(move || {
        let (db, i) = find(&name)?;
        Ok((db.dir(&i.id), i.id))
    })
    .await?;
    let (mut first, at) = optivolt_volt::instance::logs::read_from(&dir, 0);
    if let Some(n) = q.tail {
        let skip = first.len().saturating_sub(n);
        first.drain(..skip);
    }
    let lines = |v: &[optivolt_volt::instance::logs::Entry]| -> String {
        v.iter()
            .filter_map(|e| serde_json::to_string(e).ok())
            .map(|l| l + "\n")
            .collect()
    };
    let head = lines(&first);
    if !q.follow {
        return Ok(([(header::CONTENT_TYPE, "application/x-ndjson")], head).into_response());
    }
    // Following: poll the log file; end when the supervisor has gone.
    let state = (Some(head), dir, at, id, false);
    let stream = futures_util::stream::unfold(state, move |(head, dir, at, id, done)| async move {
        if let Some(h) = head {
            return Some((Ok::<_, std::io::Error>(h), (None, dir, at, id, false)));
        }
        if done {
            return None;
        }
        loop {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let (more, end) = optivolt_volt::instance::logs::read_from(&dir, at);
            let id2 = id.clone();
            let running = tokio::task::spawn_blocking(move || {
                Db::open_default()
                    .ok()
                    .and_then(|db| db.get(&id2).ok().flatten())
                    .is_some_and(|i| alive(i.supervisor))
            })
            .await
            .unwrap_or(false);
            if !more.is_empty() || !running {
                let chunk: String = more
                    .iter()
                    .filter_map(|e| serde_json::to_string(e).ok())
                    .map(|l| l + "\n")
                    .collect();
                return Some((Ok(chunk), (None, dir, end, id, !running)));
            }
        }
    });
    Ok((
        [(header::CONTENT_TYPE, "application/x-ndjson")],
        Body::from_stream(stream),
    )
        .into_response())
}

/// What an instance costs now.
#[derive(Debug, Serialize, ToSchema)]
pub struct InstanceMetrics {
    pub name: String,
    pub state: String,
    /// Host CPU seconds of the VM's monitor process (guest and monitor threads).
    pub cpu_seconds: Option<f64>,
    /// Resident memory of the monitor process (guest RAM touched included).
    pub rss_bytes: Option<u64>,
    /// Its proportional set size (shared pages divided among their users).
    pub pss_bytes: Option<u64>,
    pub uptime_seconds: Option<i64>,
    pub restarts: u32,
    /// Energy since it started, estimated with the Cloud Carbon Footprint
    /// method (`crates/volt/src/energy.rs`: one vCPU held for the uptime,
    /// the CPU-seconds used, the PSS now held for the uptime, × PUE).
    pub energy_joules: Option<f64>,
    /// The model and provider coefficients behind it.
    pub energy_model: Option<String>,
    /// The monitor's live counters, while it runs.
    pub live: Option<LiveCounters>,
}

/// A running instance's counters, from its monitor.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
pub struct LiveCounters {
    /// VM exits since the monitor started.
    pub exits: u64,
    pub rx_packets: u64,
    pub rx_bytes: u64,
    pub tx_packets: u64,
    pub tx_bytes: u64,
    /// System calls that arrived by a jump from a patched site, and by a trap
    /// (as the guest counts them).
    pub syscalls_by_jump: u64,
    pub syscalls_by_trap: u64,
    pub patched_sites: u64,
    pub page_faults: u64,
    /// Guest RAM the host backs now.
    pub guest_memory_bytes: u64,
    /// TCP connections relayed through its published ports: in all, open now.
    pub connections: u64,
    pub open_connections: u64,
}

impl From<optivolt_volt::snapshot::control::Counters> for LiveCounters {
    fn from(c: optivolt_volt::snapshot::control::Counters) -> Self {
        LiveCounters {
            exits: c.exits,
            rx_packets: c.rx_frames,
            rx_bytes: c.rx_bytes,
            tx_packets: c.tx_frames,
            tx_bytes: c.tx_bytes,
            syscalls_by_jump: c.syscalls_by_jump,
            syscalls_by_trap: c.syscalls_by_trap,
            patched_sites: c.patched_sites,
            page_faults: c.page_faults,
            guest_memory_bytes: c.guest_memory_bytes,
            connections: c.connections,
            open_connections: c.open_connections,
        }
    }
}

/// The energy model in use (the embedded coefficients, unless the
/// environment names others); `None` if the named file is unusable.
fn energy_model() -> Option<&'static optivolt_volt::energy::Model> {
    static MODEL: std::sync::OnceLock<Option<optivolt_volt::energy::Model>> =
        std::sync::OnceLock::new();
    MODEL
        .get_or_init(|| match optivolt_volt::energy::Model::from_env() {
            Ok(m) => Some(m),
            Err(e) => {
                tracing::warn!("no energy estimates: {e:#}");
                None
            }
        })
        .as_ref()
}

pub fn metrics_of(i: &Instance) -> InstanceMetrics {
    let u = optivolt_volt::instances::usage(i);
    let pss_bytes = i
        .child
        .filter(|_| u.is_some())
        .and_then(|(pid, _)| optivolt_volt::procfs::pss_bytes(pid as u32));
    let uptime_seconds = match i.state {
        State::Running => i.started.map(|s| optivolt_volt::instance::now() - s),
        _ => None,
    };
    let energy = match (energy_model(), u, uptime_seconds) {
        (Some(m), Some((cpu, _)), Some(up)) => Some((
            m.joules(&optivolt_volt::energy::Usage {
                seconds: up as f64,
                vcpus: 1.0,
                cpu_seconds: cpu,
                memory_byte_seconds: pss_bytes.unwrap_or(0) as f64 * up as f64,
            }),
            format!("{} ({})", m.name, m.provider),
        )),
        _ => None,
    };
    InstanceMetrics {
        name: i.name.clone(),
        state: cloud_state(i).into(),
        cpu_seconds: u.map(|x| x.0),
        rss_bytes: u.map(|x| x.1),
        pss_bytes,
        uptime_seconds,
        restarts: i.restarts,
        energy_joules: energy.as_ref().map(|e| e.0),
        energy_model: energy.map(|e| e.1),
        live: optivolt_volt::instances::live_counters(i).map(LiveCounters::from),
    }
}

#[utoipa::path(get, path = "/v1/instances/{name}/metrics", operation_id = "instance_metrics", params(("name" = String, Path)),
    responses((status = 200, body = InstanceMetrics), (status = 404, body = Problem)))]
pub async fn metrics_json(Path(name): Path<String>) -> Result<Json<InstanceMetrics>, ApiError> {
    blocking(move || Ok(Json(metrics_of(&find(&name)?.1)))).await
}
