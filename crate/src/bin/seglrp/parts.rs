//! Cohorts split across machines: `seglrp cohort DIR --out OUT --parts N --part I` runs one of N
//! disjoint shares of the patients (a Slurm job array, a Kubernetes Indexed Job), every part
//! writing into one OUT on a shared file system; `seglrp cohort merge OUT` builds the table and
//! `seglrp cohort status OUT` reports on the parts.
//!
//! Layout of OUT: `patients/<id>.json` (one per finished patient, written atomically by the part
//! that ran it: the result), `figures/`, `relevance/` (per patient and region), and
//! `parts/part-I-of-N.json` (each part's own status file). No two parts write the same file, and
//! no part writes `cohort.csv`, the plots or `summary.json`: only `merge` does.
//!
//! Shares go by a hash of the patient's folder name (FNV-1a modulo N), not by position in the
//! sorted list: a patient added later joins some share and moves no one else, so a re-submitted
//! array with more patients finds every finished patient where it was.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::cohort::{write_summary, PatientResult};
use crate::common::write;

/// FNV-1a, 64 bits: stable across machines, versions and runs (std's hasher is not).
pub fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3))
}

/// One of `parts` shares of a cohort, numbered from 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Share {
    pub part: u32,
    pub parts: u32,
}

impl Share {
    pub fn holds(&self, patient: &str) -> bool {
        fnv1a(patient.as_bytes()) % u64::from(self.parts) == u64::from(self.part)
    }

    fn status_path(&self, out: &Path) -> PathBuf {
        out.join("parts").join(format!("part-{}-of-{}.json", self.part, self.parts))
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Failure {
    pub patient: String,
    pub error: String,
}

/// A part's status file: what it was given, what it has done, and whether it is still at it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PartStatus {
    pub part: u32,
    pub parts: u32,
    pub host: String,
    pub pid: u32,
    /// Seconds since 1970.
    pub started: u64,
    pub updated: u64,
    /// "running", "done" (every patient finished) or "failed" (some patients failed).
    pub state: String,
    /// The patients of this share, in name order.
    pub assigned: Vec<String>,
    /// Finished by this run.
    pub done: Vec<String>,
    /// Finished before (same settings): not redone.
    pub skipped: Vec<String>,
    pub failed: Vec<Failure>,
    /// Being analysed now.
    pub current: Vec<String>,
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

fn host() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_string())
        .unwrap_or_default()
}

/// Keeps a part's status file up to date as its patients start, finish or fail.
pub struct Tracker {
    path: PathBuf,
    status: Mutex<PartStatus>,
}

impl Tracker {
    pub fn start(out: &Path, share: Share, assigned: Vec<String>, skipped: Vec<String>) -> Result<Tracker, String> {
        let t = now();
        let status = PartStatus {
            part: share.part,
            parts: share.parts,
            host: host(),
            pid: std::process::id(),
            started: t,
            updated: t,
            state: "running".into(),
            assigned,
            done: Vec::new(),
            skipped,
            failed: Vec::new(),
            current: Vec::new(),
        };
        let tracker = Tracker { path: share.status_path(out), status: Mutex::new(status) };
        tracker.update(|_| {})?;
        Ok(tracker)
    }

    fn update(&self, change: impl FnOnce(&mut PartStatus)) -> Result<(), String> {
        let mut s = self.status.lock().map_err(|_| "a worker panicked")?;
        change(&mut s);
        s.updated = now();
        write(&self.path, serde_json::to_string_pretty(&*s).expect("plain JSON").as_bytes())
    }

    pub fn begin(&self, patient: &str) -> Result<(), String> {
        self.update(|s| s.current.push(patient.into()))
    }

    pub fn end(&self, patient: &str, error: Option<&str>) -> Result<(), String> {
        self.update(|s| {
            s.current.retain(|p| p != patient);
            match error {
                None => s.done.push(patient.into()),
                Some(e) => s.failed.push(Failure { patient: patient.into(), error: e.into() }),
            }
        })
    }

    pub fn finish(&self) -> Result<(), String> {
        self.update(|s| s.state = if s.failed.is_empty() { "done" } else { "failed" }.into())
    }
}

fn read_json<T: for<'a> Deserialize<'a>>(dir: &Path) -> Result<Vec<(PathBuf, T)>, String> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Ok(Vec::new()) };
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    paths.sort();
    paths
        .into_iter()
        .map(|p| {
            let bytes = std::fs::read(&p).map_err(|e| format!("{}: {e}", p.display()))?;
            let v = serde_json::from_slice(&bytes)
                .map_err(|e| format!("{}: not a file seglrp wrote ({e})", p.display()))?;
            Ok((p, v))
        })
        .collect()
}

fn part_statuses(out: &Path) -> Result<Vec<PartStatus>, String> {
    Ok(read_json::<PartStatus>(&out.join("parts"))?.into_iter().map(|(_, s)| s).collect())
}

/// Patients the parts were given but that have no result yet, and the failures among them.
fn outstanding(parts: &[PartStatus], done: &BTreeSet<String>) -> (Vec<String>, Vec<Failure>) {
    let assigned: BTreeSet<&String> = parts.iter().flat_map(|p| &p.assigned).collect();
    let missing = assigned.into_iter().filter(|p| !done.contains(*p)).cloned().collect();
    let mut failed: Vec<Failure> =
        parts.iter().flat_map(|p| p.failed.clone()).filter(|f| !done.contains(&f.patient)).collect();
    failed.sort_by(|a, b| a.patient.cmp(&b.patient));
    failed.dedup_by(|a, b| a.patient == b.patient);
    (missing, failed)
}

/// `seglrp cohort merge OUT`.
pub fn merge(out: &Path) -> Result<(), String> {
    let mut results: Vec<PatientResult> =
        read_json::<PatientResult>(&out.join("patients"))?.into_iter().map(|(_, r)| r).collect();
    if results.is_empty() {
        return Err(format!("{}: no finished patients (OUT/patients/*.json) to merge", out.display()));
    }
    results.sort_by(|a, b| a.patient.cmp(&b.patient));
    let settings = results[0].settings.clone();
    let other: Vec<&PatientResult> = results.iter().filter(|r| !r.settings.same_work(&settings)).collect();
    if let Some(o) = other.first() {
        let describe = |s: &crate::cohort::Settings| {
            format!(
                "model {} ({}), composite {}, class {}, regions {}",
                s.model,
                s.model_hash,
                s.composite,
                s.class.map_or("foreground".to_string(), |c| c.to_string()),
                s.regions.join(",")
            )
        };
        return Err(format!(
            "{} holds results made with different settings, which cannot go in one table: {} patient(s) with {} (e.g. \
                {}), {} with {} (e.g. {}). Move one set to another folder, or rerun it with the other's settings",
            out.display(),
            results.len() - other.len(),
            describe(&settings),
            results[0].patient,
            other.len(),
            describe(&o.settings),
            o.patient
        ));
    }
    let parts = part_statuses(out)?;
    let done: BTreeSet<String> = results.iter().map(|r| r.patient.clone()).collect();
    let (missing, failed) = outstanding(&parts, &done);
    let written = write_summary(out, &settings, &results)?;
    let summary = serde_json::json!({
        "settings": settings,
        "patients": results.len(),
        "missing": missing,
        "failed": failed,
        "parts": parts.iter().map(|p| serde_json::json!({
            "part": p.part, "parts": p.parts, "state": p.state, "host": p.host,
            "assigned": p.assigned.len(), "done": p.done.len(), "skipped": p.skipped.len(), "failed": p.failed.len(),
        })).collect::<Vec<_>>(),
        "written": written.iter().map(|p| p.display().to_string()).collect::<Vec<_>>(),
    });
    write(&out.join("summary.json"), serde_json::to_string_pretty(&summary).expect("plain JSON").as_bytes())?;
    eprintln!(
        "merged {} patient(s) from {} part file(s); wrote {}, {}",
        results.len(),
        parts.len(),
        out.join("summary.json").display(),
        written.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
    );
    if missing.is_empty() {
        return Ok(());
    }
    let waiting: Vec<&str> =
        missing.iter().filter(|m| !failed.iter().any(|f| &f.patient == *m)).map(|s| s.as_str()).collect();
    let mut msg =
        format!("{} patient(s) have no result yet (the table holds the {} finished)", missing.len(), results.len());
    if !failed.is_empty() {
        let errors: Vec<String> = failed.iter().map(|f| format!("  {}: {}", f.patient, f.error)).collect();
        msg += &format!("\nfailed ({}):\n{}", failed.len(), errors.join("\n"));
    }
    if !waiting.is_empty() {
        msg += &format!(
            "\nnot done ({}; a part still running, stopped or not yet started): {}",
            waiting.len(),
            waiting.join(", ")
        );
    }
    msg += "\nre-submit the parts (finished patients are skipped), then merge again";
    Err(msg)
}

/// `seglrp cohort status OUT`.
pub fn status(out: &Path, json: bool) -> Result<(), String> {
    let parts = part_statuses(out)?;
    if parts.is_empty() {
        return Err(format!("{}: no part status files (OUT/parts/); was the cohort run with --parts?", out.display()));
    }
    let done: BTreeSet<String> =
        read_json::<PatientResult>(&out.join("patients"))?.into_iter().map(|(_, r)| r.patient).collect();
    let (missing, failed) = outstanding(&parts, &done);
    if json {
        let v = serde_json::json!({ "parts": parts, "done": done.len(), "missing": missing, "failed": failed });
        println!("{}", serde_json::to_string_pretty(&v).expect("plain JSON"));
        return Ok(());
    }
    let t = now();
    for p in &parts {
        let finished = p.assigned.iter().filter(|a| done.contains(*a)).count();
        let current = if p.current.is_empty() { String::new() } else { format!(", now {}", p.current.join(", ")) };
        println!(
            "part {} of {} ({} pid {}): {} — {finished} of {} patient(s) finished ({} by this run, {} before), {} \
                failed{current}; last update {} s ago",
            p.part,
            p.parts,
            p.host,
            p.pid,
            p.state,
            p.assigned.len(),
            p.done.len(),
            p.skipped.len(),
            p.failed.len(),
            t.saturating_sub(p.updated)
        );
    }
    let total: BTreeSet<&String> = parts.iter().flat_map(|p| &p.assigned).collect();
    println!(
        "all parts: {} of {} patient(s) finished, {} failed, {} to do",
        total.len() - missing.len(),
        total.len(),
        failed.len(),
        missing.len() - failed.len()
    );
    for f in &failed {
        println!("  failed {}: {}", f.patient, f.error);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_are_disjoint_cover_everyone_and_do_not_move_when_patients_are_added() {
        let ids: Vec<String> = (1..=200).map(|i| format!("patient{i:03}")).collect();
        let parts = 7;
        let of = |id: &str| (0..parts).filter(|p| Share { part: *p, parts }.holds(id)).collect::<Vec<_>>();
        let mut sizes = vec![0; parts as usize];
        for id in &ids {
            let owners = of(id);
            assert_eq!(owners.len(), 1, "{id} is in exactly one share");
            sizes[owners[0] as usize] += 1;
        }
        // A hash spreads 200 patients over 7 shares roughly evenly.
        assert!(sizes.iter().all(|n| (15..=45).contains(n)), "{sizes:?}");
        // The share of a patient depends on its name alone.
        assert_eq!(of("patient042"), of("patient042"));
        assert_eq!(fnv1a(b"a"), 0xaf63dc4c8601ec8c, "FNV-1a's published value");
    }

    #[test]
    fn outstanding_patients_are_the_assigned_without_results() {
        let status = |part, assigned: &[&str], failed: &[&str]| PartStatus {
            part,
            parts: 2,
            host: "h".into(),
            pid: 1,
            started: 0,
            updated: 0,
            state: "running".into(),
            assigned: assigned.iter().map(|s| s.to_string()).collect(),
            done: vec![],
            skipped: vec![],
            failed: failed.iter().map(|p| Failure { patient: p.to_string(), error: "bad".into() }).collect(),
            current: vec![],
        };
        let parts = [status(0, &["a", "c"], &["c"]), status(1, &["b", "d"], &["b"])];
        // b failed once but has a result since (a re-submitted part redid it).
        let done: BTreeSet<String> = ["a", "b"].iter().map(|s| s.to_string()).collect();
        let (missing, failed) = outstanding(&parts, &done);
        assert_eq!(missing, ["c", "d"]);
        assert_eq!(failed.iter().map(|f| f.patient.as_str()).collect::<Vec<_>>(), ["c"]);
    }
}
