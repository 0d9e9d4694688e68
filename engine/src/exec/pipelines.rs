//! Template and pipeline statements: their accesses, and the handlers of
//! `CREATE`/`DROP TEMPLATE` and the `SHOW`s (stamping and dropping a
//! pipeline run their statements back through the funnel, in
//! [`crate::session`]; see [`crate::pipelines`]).

use autolake_sql::{Family, Statement};
use chrono::Utc;

use super::query::{datafusion_statement, done, parse_one_df};
use crate::context::{StatementContext, StatementResult};
use crate::error::{Error, Result};
use crate::governance::{Privilege, Securable};
use crate::names::single_name;
use crate::pipelines::{StoredParam, TemplateVersion};
use crate::principal::{Access, Action, Object};

/// What a template or pipeline statement touches.
pub(super) fn accesses(statement: &Statement, out: &mut Vec<Access>) -> Result<()> {
    let access = |action, object| Access { action, object };
    match statement {
        Statement::CreateTemplate(t) => out.push(access(
            Action::Create,
            Object::Template(single_name("template", &t.name)?),
        )),
        Statement::DropTemplate { name, .. } => out.push(access(
            Action::Drop,
            Object::Template(single_name("template", name)?),
        )),
        Statement::CreatePipeline(p) => {
            out.push(access(
                Action::Create,
                Object::Pipeline(single_name("pipeline", &p.name)?),
            ));
            out.push(access(
                Action::Select,
                Object::Template(single_name("template", &p.template)?),
            ));
        }
        Statement::DropPipeline { name, .. } => out.push(access(
            Action::Drop,
            Object::Pipeline(single_name("pipeline", name)?),
        )),
        Statement::ShowTemplates => out.push(access(
            Action::Select,
            Object::System("templates".to_string()),
        )),
        Statement::ShowPipelines => out.push(access(
            Action::Select,
            Object::System("pipelines".to_string()),
        )),
        other => return Err(super::reads::outside(Family::Pipelines, other)),
    }
    Ok(())
}

/// Runs a template statement or a `SHOW`.
pub(super) async fn run(cx: &StatementContext, statement: &Statement) -> Result<StatementResult> {
    let kind = statement.kind();
    match statement {
        Statement::CreateTemplate(t) => {
            let name = single_name("template", &t.name)?;
            crate::lake::validate_name("template", &name)?;
            let statements =
                autolake_sql::template::check(&name, &t.params, &t.body).map_err(Error::invalid)?;
            let store = cx.engine.pipelines();
            if t.or_replace && store.template(&name).await?.is_some() {
                // A new version of someone's template is a change of it.
                let state = cx.engine.governance().state().await?;
                let template = Securable::Template(name.clone());
                if !state.allows(&cx.principal, Privilege::Manage, &template) {
                    return Err(Error::PermissionDenied(format!(
                        "user {} lacks MANAGE on template {name}, needed to add a version",
                        cx.principal.name
                    )));
                }
            }
            let version = store
                .add_template(
                    &name,
                    t.or_replace,
                    TemplateVersion {
                        version: 0,
                        params: t.params.iter().map(StoredParam::from_param).collect(),
                        body: t.body.clone(),
                        created_by: cx.principal.name.clone(),
                        created_at: Utc::now(),
                    },
                )
                .await?;
            tracing::info!("template {name} version {version}: {statements} statements");
            Ok(done(kind))
        }
        Statement::DropTemplate { name, if_exists } => {
            let name = single_name("template", name)?;
            if !cx.engine.pipelines().drop_template(&name).await? && !if_exists {
                return Err(Error::NotFound {
                    kind: "template",
                    name,
                });
            }
            Ok(done(kind))
        }
        Statement::ShowTemplates => {
            datafusion_statement(
                cx,
                parse_one_df(
                    "SELECT name, version, parameters, owner, created_at \
                     FROM lake.system.templates ORDER BY name, version",
                )?,
                kind,
            )
            .await
        }
        Statement::ShowPipelines => {
            datafusion_statement(
                cx,
                parse_one_df(
                    "SELECT name, template, template_version, status, objects, owner, created_at \
                     FROM lake.system.pipelines ORDER BY name",
                )?,
                kind,
            )
            .await
        }
        Statement::CreatePipeline(_) | Statement::DropPipeline { .. } => Err(Error::internal(
            "pipelines are stamped and dropped by the session funnel",
        )),
        other => Err(super::reads::outside(Family::Pipelines, other)),
    }
}
