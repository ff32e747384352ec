//! `docker/compose`, through which the Justfile runs Docker Compose: v2 where
//! `docker compose` answers, else v1's `docker-compose`, else one line that
//! names what is missing. Each case runs the script with a PATH that holds
//! only stand-ins for `docker` and `docker-compose`, written here.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/docker/compose");

/// Writes an executable shell script `name` into `dir`.
fn stand_in(dir: &Path, name: &str, body: &str) {
    let path = dir.join(name);
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// Runs `docker/compose up --detach` with PATH set to `dir` alone.
fn compose_in(dir: &Path) -> (Option<i32>, String, String) {
    let out = Command::new(SCRIPT)
        .args(["up", "--detach"])
        .env("PATH", dir)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn compose_v2_is_used_where_docker_compose_answers() {
    let dir = tempfile::tempdir().unwrap();
    stand_in(dir.path(), "docker", r#"echo "docker $*""#);
    stand_in(dir.path(), "docker-compose", r#"echo "docker-compose $*""#);
    let (code, stdout, stderr) = compose_in(dir.path());
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(stdout, "docker compose up --detach\n");
}

#[test]
fn compose_v1_is_used_where_docker_has_no_compose_plugin() {
    let dir = tempfile::tempdir().unwrap();
    // As Docker's client says when the compose plugin is missing.
    stand_in(
        dir.path(),
        "docker",
        "echo \"docker: unknown command: docker $1\" >&2; exit 1",
    );
    stand_in(dir.path(), "docker-compose", r#"echo "docker-compose $*""#);
    let (code, stdout, stderr) = compose_in(dir.path());
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(stdout, "docker-compose up --detach\n");
}

#[test]
fn without_compose_one_line_names_what_is_missing() {
    let dir = tempfile::tempdir().unwrap();
    let (code, stdout, stderr) = compose_in(dir.path());
    assert_eq!(code, Some(127));
    assert!(stdout.is_empty(), "{stdout}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with("error: Docker is not installed"),
        "{stderr}"
    );

    stand_in(dir.path(), "docker", "exit 1");
    let (code, _, stderr) = compose_in(dir.path());
    assert_eq!(code, Some(127));
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("neither Docker Compose v2 (`docker compose`")
            && stderr.contains("nor v1 (`docker-compose`)"),
        "{stderr}"
    );
}
