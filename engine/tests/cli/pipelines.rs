//! Templates and pipelines from the CLI: two pipelines stamped from one
//! template are independent, hostile parameter values change no
//! statement, a pipeline failing halfway leaves nothing behind but its
//! audit trail, and jobs run after their upstreams.

use std::path::Path;

use autolake_engine::{Engine, EngineConfig, Interface};

use super::{autolake, count, failed, ok, sql};

const TEMPLATE: &str = "CREATE TEMPLATE feed (s IDENT, src IDENT DEFAULT 'base.events', \
    minimum INT DEFAULT 0, label TEXT DEFAULT 'plain', every INTERVAL DEFAULT '1 hour') AS $$
CREATE SCHEMA ${s};
-- The cleaned rows, labelled: ${s} in a comment stays as written.
CREATE TABLE ${s}.clean AS SELECT id, v, ${label} AS label FROM lake.${src} WHERE v >= ${minimum};
CREATE TABLE ${s}.copied (id INT, v INT, label TEXT);
CREATE JOB ${s}_copy EVERY '${every}' AS
  INSERT INTO ${s}.copied SELECT id, v, label FROM table_changes('${s}.clean');
$$";

fn setup(lake: &Path) {
    ok(sql(
        lake,
        "CREATE SCHEMA base; CREATE TABLE base.events (id INT, v INT); \
         INSERT INTO base.events VALUES (1, 1), (2, 2), (3, 3), (4, 4);",
    ));
    ok(sql(lake, TEMPLATE));
}

#[test]
fn two_pipelines_from_one_template_are_independent_and_hostile_values_change_nothing() {
    let lake = tempfile::tempdir().unwrap();
    let lake = lake.path();
    setup(lake);
    let made = ok(sql(
        lake,
        "CREATE PIPELINE a FROM TEMPLATE feed WITH (s = team_a, minimum = 3)",
    ));
    assert_eq!(
        made,
        "pipeline,kind,name,version\na,schema,team_a,\na,table,team_a.clean,\n\
         a,table,team_a.copied,\na,job,team_a_copy,\n"
    );
    // A text value with quotes and a statement inside stays one literal.
    ok(sql(
        lake,
        "CREATE PIPELINE b FROM TEMPLATE feed WITH (s = 'team_b', \
         label = 'x''); DROP TABLE lake.base.events; --', every = '5 minutes')",
    ));
    assert_eq!(count(lake, "SELECT count(*) FROM team_a.clean"), 2);
    assert_eq!(count(lake, "SELECT count(*) FROM team_b.clean"), 4);
    assert_eq!(count(lake, "SELECT count(*) FROM base.events"), 4);
    assert_eq!(
        ok(sql(lake, "SELECT DISTINCT label FROM team_b.clean")),
        "label\nx'); DROP TABLE lake.base.events; --\n"
    );
    // Each pipeline's job copies its own rows.
    ok(sql(lake, "RUN JOB team_a_copy; RUN JOB team_b_copy"));
    assert_eq!(count(lake, "SELECT count(*) FROM team_a.copied"), 2);
    assert_eq!(count(lake, "SELECT count(*) FROM team_b.copied"), 4);

    assert_eq!(
        ok(sql(
            lake,
            "SELECT name, template, template_version, parameters, status, owner, \
             array_length(objects) AS objects FROM system.pipelines ORDER BY name"
        )),
        "name,template,template_version,parameters,status,owner,objects\n\
         a,feed,1,\"{\"\"every\"\":\"\"1 hour\"\",\"\"label\"\":\"\"plain\"\",\"\"minimum\"\":\"\"3\"\",\"\"s\"\":\"\"team_a\"\",\"\"src\"\":\"\"base.events\"\"}\",active,admin,4\n\
         b,feed,1,\"{\"\"every\"\":\"\"5 minutes\"\",\"\"label\"\":\"\"x''); DROP TABLE lake.base.events; --\"\",\"\"minimum\"\":\"\"0\"\",\"\"s\"\":\"\"team_b\"\",\"\"src\"\":\"\"base.events\"\"}\",active,admin,4\n"
            .replace("x''", "x'")
    );
    assert_eq!(
        ok(sql(
            lake,
            "SELECT schema, name, pipeline FROM system.tables ORDER BY schema, name"
        )),
        "schema,name,pipeline\nbase,events,\nteam_a,clean,a\nteam_a,copied,a\n\
         team_b,clean,b\nteam_b,copied,b\n"
    );
    assert_eq!(
        ok(sql(
            lake,
            "SELECT name, schedule, pipeline FROM system.jobs ORDER BY name"
        )),
        "name,schedule,pipeline\nteam_a_copy,EVERY '1 hour',a\nteam_b_copy,EVERY '5 minutes',b\n"
    );
    let shown = ok(sql(lake, "SHOW PIPELINES"));
    assert!(shown.contains("a,feed,1,active"), "{shown}");

    // Hostile or wrong values are refused before anything runs.
    for (with, message) in [
        (
            "s = 'x\"; DROP TABLE base.events; --'",
            "parameter s is IDENT: expected a name",
        ),
        ("s = c, minimum = '1 OR 1=1'", "parameter minimum is INT"),
        (
            "s = c, every = '1 minute''; DROP TABLE base.events; --'",
            "parameter every is INTERVAL",
        ),
        ("s = c, nope = 1", "template feed has no parameter nope"),
        ("minimum = 1", "needs a value for parameter s"),
    ] {
        let e = failed(
            sql(
                lake,
                &format!("CREATE PIPELINE c FROM TEMPLATE feed WITH ({with})"),
            ),
            1,
        );
        assert!(e.contains(message), "{with}: {e}");
    }
    assert_eq!(count(lake, "SELECT count(*) FROM system.pipelines"), 2);
    assert_eq!(count(lake, "SELECT count(*) FROM base.events"), 4);

    // DROP PIPELINE stops the moving parts and keeps the data; PURGE
    // removes everything.
    ok(sql(lake, "DROP PIPELINE a"));
    assert_eq!(
        count(
            lake,
            "SELECT count(*) FROM system.jobs WHERE name = 'team_a_copy'"
        ),
        0
    );
    assert_eq!(count(lake, "SELECT count(*) FROM team_a.copied"), 2);
    ok(sql(lake, "DROP PIPELINE b PURGE"));
    assert_eq!(
        count(
            lake,
            "SELECT count(*) FROM system.tables WHERE schema = 'team_b'"
        ),
        0
    );
    assert!(!lake.join("tables/team_b").exists() || dir_is_empty(&lake.join("tables/team_b")));
    assert_eq!(count(lake, "SELECT count(*) FROM system.pipelines"), 0);
    let e = failed(sql(lake, "DROP PIPELINE b"), 1);
    assert!(e.contains("pipeline b does not exist"), "{e}");
}

fn dir_is_empty(dir: &Path) -> bool {
    std::fs::read_dir(dir).map_or(true, |mut d| d.next().is_none())
}

#[test]
fn a_pipeline_failing_halfway_leaves_nothing_but_its_audit_trail() {
    let lake = tempfile::tempdir().unwrap();
    let lake = lake.path();
    setup(lake);
    let before = ok(sql(
        lake,
        "SELECT schema, name FROM system.tables ORDER BY 1, 2",
    ));
    ok(sql(
        lake,
        "CREATE TEMPLATE broken (s IDENT) AS $$
CREATE SCHEMA ${s};
CREATE TABLE ${s}.t AS SELECT id, v FROM lake.base.events;
CREATE JOB ${s}_j EVERY '1 hour' AS INSERT INTO ${s}.t SELECT id, v FROM table_changes('base.events');
CREATE MODEL ${s}_m TYPE linear_regression OPTIONS (target 'v') AS SELECT id, v FROM lake.${s}.t;
INSERT INTO ${s}.t SELECT CAST('not a number' AS INT), 1;
$$",
    ));
    let e = failed(
        sql(
            lake,
            "CREATE PIPELINE p FROM TEMPLATE broken WITH (s = half)",
        ),
        1,
    );
    assert!(
        e.contains("pipeline p failed at statement 5 (line 6 of template broken version 1)"),
        "{e}"
    );
    assert!(
        e.contains("removed what it had made: model half_m, job half_j, table half.t, schema half"),
        "{e}"
    );
    assert_eq!(
        ok(sql(
            lake,
            "SELECT schema, name FROM system.tables ORDER BY 1, 2"
        )),
        before
    );
    assert_eq!(count(lake, "SELECT count(*) FROM system.jobs"), 0);
    assert_eq!(count(lake, "SELECT count(*) FROM system.models"), 0);
    assert_eq!(count(lake, "SELECT count(*) FROM system.pipelines"), 0);
    assert!(!lake.join("tables/half").exists() || dir_is_empty(&lake.join("tables/half")));
    // The trail: each statement of the pipeline, the failure, each drop.
    let trail = ok(sql(
        lake,
        "SELECT kind, outcome FROM system.audit_log \
         WHERE kind IN ('CREATE PIPELINE', 'CREATE SCHEMA', 'CREATE TABLE AS SELECT', \
         'CREATE JOB', 'CREATE MODEL', 'INSERT', 'DROP MODEL', 'DROP JOB', 'DROP TABLE', 'DROP SCHEMA') \
         AND (statement LIKE '%half%' OR kind = 'CREATE PIPELINE') ORDER BY seq",
    ));
    assert_eq!(
        trail,
        "kind,outcome\nCREATE SCHEMA,success\nCREATE TABLE AS SELECT,success\nCREATE JOB,success\n\
         CREATE MODEL,success\nINSERT,failure\nDROP MODEL,success\nDROP JOB,success\n\
         DROP TABLE,success\nDROP SCHEMA,success\nCREATE PIPELINE,failure\n"
    );

    // A pipeline writes only into what it makes.
    ok(sql(
        lake,
        "CREATE TEMPLATE intruder (s IDENT) AS $$
CREATE TABLE ${s} (x INT);
INSERT INTO lake.base.events VALUES (99, 99);
$$",
    ));
    let e = failed(
        sql(
            lake,
            "CREATE PIPELINE q FROM TEMPLATE intruder WITH (s = mine)",
        ),
        1,
    );
    assert!(
        e.contains("a pipeline writes only to tables it creates, and lake.base.events existed before pipeline q"),
        "{e}"
    );
    assert!(
        e.contains("removed what it had made: table public.mine"),
        "{e}"
    );
    assert_eq!(count(lake, "SELECT count(*) FROM base.events"), 4);
}

#[test]
fn template_bodies_are_checked_when_made_and_versions_add_up() {
    let lake = tempfile::tempdir().unwrap();
    let lake = lake.path();
    setup(lake);
    for (body, message) in [
        (
            "CREATE TABLE ${s}.a (x INT);\nINSERT INTO ${s}.a VALUES (1,;",
            "template t, line 2 of the body",
        ),
        (
            "CREATE TABLE ${s}.a (x INT);\nDROP TABLE ${s}.a",
            "statement 2 at line 2 of the body: a template holds",
        ),
        ("SELECT ${t}", "${t} is not a parameter of the template"),
    ] {
        let e = failed(
            sql(lake, &format!("CREATE TEMPLATE t (s IDENT) AS $${body}$$")),
            1,
        );
        assert!(e.contains(message), "{body}: {e}");
    }
    let e = failed(sql(lake, TEMPLATE), 1);
    assert!(e.contains("template feed already exists"), "{e}");
    let e = failed(
        sql(
            lake,
            "CREATE TEMPLATE v (s IDENT) AS $$CREATE VIEW ${s} AS SELECT 1$$",
        ),
        1,
    );
    assert!(e.contains("found CREATE VIEW"), "{e}");
    ok(sql(
        lake,
        &TEMPLATE.replace("CREATE TEMPLATE", "CREATE OR REPLACE TEMPLATE"),
    ));
    assert_eq!(
        ok(sql(
            lake,
            "SELECT name, version, parameters FROM system.templates ORDER BY version"
        )),
        "name,version,parameters\n\
         feed,1,\"s IDENT, src IDENT DEFAULT 'base.events', minimum INT DEFAULT '0', label TEXT DEFAULT 'plain', every INTERVAL DEFAULT '1 hour'\"\n\
         feed,2,\"s IDENT, src IDENT DEFAULT 'base.events', minimum INT DEFAULT '0', label TEXT DEFAULT 'plain', every INTERVAL DEFAULT '1 hour'\"\n"
    );
    ok(sql(
        lake,
        "CREATE PIPELINE old FROM TEMPLATE feed VERSION 1 WITH (s = o)",
    ));
    assert_eq!(
        count(lake, "SELECT template_version FROM system.pipelines"),
        1
    );
    let e = failed(
        sql(
            lake,
            "CREATE PIPELINE x FROM TEMPLATE feed VERSION 7 WITH (s = x)",
        ),
        1,
    );
    assert!(e.contains("feed version 7"), "{e}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pipeline_runs_as_its_creator() {
    let lake = tempfile::tempdir().unwrap();
    setup(lake.path());
    let engine = Engine::open(EngineConfig::for_lake(lake.path().to_string_lossy()))
        .await
        .unwrap();
    let scientist = super::scientist();
    let session = engine.session(scientist, Interface::Cli);
    // The scientist may read base.events, but not make schemas.
    let e = session
        .execute("CREATE PIPELINE s FROM TEMPLATE feed WITH (s = sams)")
        .await
        .unwrap_err();
    assert_eq!(
        e.kind(),
        autolake_engine::error::ErrorKind::PermissionDenied,
        "{e}"
    );
    assert!(e.to_string().contains("failed at statement 1"), "{e}");
    assert!(
        session
            .execute("SELECT count(*) FROM system.pipelines")
            .await
            .is_ok()
    );
    engine.close().await.unwrap();
    assert_eq!(
        count(lake.path(), "SELECT count(*) FROM system.pipelines"),
        0
    );
    assert_eq!(
        count(
            lake.path(),
            "SELECT count(*) FROM system.tables WHERE schema = 'sams'"
        ),
        0
    );
}

#[test]
fn jobs_run_after_their_upstreams_and_cycles_are_refused() {
    let lake = tempfile::tempdir().unwrap();
    let lake = lake.path();
    ok(sql(
        lake,
        "CREATE TABLE raw (id INT); CREATE TABLE mid (id INT); CREATE TABLE out (id INT); \
         CREATE JOB a EVERY '1 hour' AS INSERT INTO mid SELECT id * 10 FROM table_changes('raw'); \
         CREATE JOB b AFTER a AS INSERT INTO out SELECT id + 1 FROM table_changes('mid'); \
         INSERT INTO raw VALUES (1), (2);",
    ));
    let e = failed(
        sql(lake, "CREATE JOB c AFTER c AS INSERT INTO out SELECT 1"),
        1,
    );
    assert!(e.contains("job c cannot run after itself"), "{e}");
    let e = failed(
        sql(lake, "CREATE JOB c AFTER nope AS INSERT INTO out SELECT 1"),
        1,
    );
    assert!(e.contains("job nope does not exist"), "{e}");
    let e = failed(sql(lake, "DROP JOB a"), 1);
    assert!(e.contains("job a cannot be dropped: b run after it"), "{e}");

    // One run-due: a (due at once), then b after it.
    let out = ok(autolake(lake, &["jobs", "run-due"]));
    assert_eq!(
        out,
        "a run 1: succeeded (2 rows read, 2 written, 0 late)\n\
         b run 1: succeeded (2 rows read, 2 written, 0 late)\n",
    );
    assert_eq!(
        ok(sql(lake, "SELECT id FROM out ORDER BY id")),
        "id\n11\n21\n"
    );
    // Nothing new upstream: b does not run.
    assert_eq!(ok(autolake(lake, &["jobs", "run-due"])), "");
    ok(sql(lake, "INSERT INTO raw VALUES (3); RUN JOB a"));
    assert_eq!(
        ok(autolake(lake, &["jobs", "run-due"])),
        "b run 2: succeeded (1 rows read, 1 written, 0 late)\n"
    );
    assert_eq!(count(lake, "SELECT count(*) FROM out"), 3);

    // A paused upstream is shown downstream, not silently waited on.
    ok(sql(lake, "ALTER JOB a PAUSE"));
    assert_eq!(
        ok(sql(
            lake,
            "SELECT name, schedule, upstreams, blocked_by FROM system.jobs ORDER BY name"
        )),
        "name,schedule,upstreams,blocked_by\na,EVERY '1 hour',,\nb,AFTER a,a,a (paused)\n"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn flight_sql_users_stamp_pipelines_they_own_and_are_refused_the_rest() {
    use super::flight::{PASSWORD, Server, has_code, rows, text};
    let lake = tempfile::tempdir().unwrap();
    setup(lake.path());
    let server = Server::start(lake.path(), 3600);
    let mut admin = server.client().await;
    admin.handshake("admin", PASSWORD).await.expect("login");
    for statement in [
        "CREATE USER eng PASSWORD 'eng-pw' ROLE engineer",
        "CREATE USER sci PASSWORD 'sci-pw' ROLE scientist",
    ] {
        admin.execute_update(statement.into(), None).await.unwrap();
    }
    let mut eng = server.client().await;
    eng.handshake("eng", "eng-pw").await.expect("eng logs in");
    eng.execute_update(
        "CREATE PIPELINE e FROM TEMPLATE feed WITH (s = eng_area)".into(),
        None,
    )
    .await
    .unwrap();
    let info = eng
        .execute(
            "SELECT p.owner, t.name, t.owner AS table_owner FROM system.pipelines p \
             JOIN system.tables t ON t.pipeline = p.name ORDER BY t.name"
                .into(),
            None,
        )
        .await
        .unwrap();
    let shown = text(&rows(&mut eng, info).await);
    assert!(
        shown.contains("| eng   | clean  | eng         |"),
        "{shown}"
    );
    assert!(
        shown.contains("| eng   | copied | eng         |"),
        "{shown}"
    );

    // A scientist may not make schemas: the pipeline is refused as a
    // whole and leaves nothing.
    let mut sci = server.client().await;
    sci.handshake("sci", "sci-pw").await.expect("sci logs in");
    let err = sci
        .execute_update(
            "CREATE PIPELINE s FROM TEMPLATE feed WITH (s = sci_area)".into(),
            None,
        )
        .await
        .unwrap_err();
    assert!(has_code(&err, tonic::Code::PermissionDenied), "{err:?}");
    // Nor drop someone else's pipeline.
    let err = sci
        .execute_update("DROP PIPELINE e PURGE".into(), None)
        .await
        .unwrap_err();
    assert!(has_code(&err, tonic::Code::PermissionDenied), "{err:?}");
    drop(server);
    assert_eq!(
        count(
            lake.path(),
            "SELECT count(*) FROM system.pipelines WHERE name = 's'"
        ),
        0
    );
    assert_eq!(
        count(
            lake.path(),
            "SELECT count(*) FROM system.audit_log WHERE user = 'sci' \
             AND kind = 'CREATE SCHEMA' AND outcome = 'denied'"
        ),
        1
    );
}
