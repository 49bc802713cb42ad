//! The `threadcart` command line (CONTRACT.md): every command reads the same environment as the server,
//! applies pending migrations first, prints JSON on stdout, and exits non-zero with a one-line error.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use serde_json::json;

use crate::auth::{Role, keys};
use crate::config::Config;
use crate::db::Db;
use crate::kernel::PageId;
use crate::merchants::pages::{self, NewPage};
use crate::merchants::{self, NewMerchant};
use crate::startup::Application;

/// threadcart: conversational commerce on Messenger.
#[derive(Debug, Parser)]
#[command(name = "threadcart", version, about)]
pub struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run pending migrations, then serve HTTP and the workers (the default, in dev mode on loopback).
    Serve {
        /// Load the demo merchants at start (default: on for SQLite, off for PostgreSQL; env THREADCART_DEMO).
        #[arg(long, env = "THREADCART_DEMO")]
        demo: Option<bool>,
        /// Dev mode: the thread simulator at /dev/simulator, with Meta's Graph API (and, without Stripe
        /// keys, Stripe) stood in for by the server itself. Refuses a non-loopback address.
        #[arg(long)]
        dev: bool,
    },
    /// Run pending migrations and exit.
    Migrate,
    /// Manage merchants.
    Merchant {
        #[command(subcommand)]
        command: MerchantCommand,
    },
    /// Manage Messenger Pages.
    Page {
        #[command(subcommand)]
        command: PageCommand,
    },
    /// Manage WhatsApp Cloud API numbers.
    Whatsapp {
        #[command(subcommand)]
        command: WhatsappCommand,
    },
    /// Load the demo merchants from fixtures/ and print their ids, Page ids and API keys.
    Demo,
}

#[derive(Debug, Subcommand)]
enum WhatsappCommand {
    /// Connect a WhatsApp Business Account's phone number to a merchant, once Meta lists it on the
    /// account for the token.
    Connect {
        /// The merchant's id.
        #[arg(long)]
        merchant: crate::kernel::MerchantId,
        /// The phone number's id (webhooks' `metadata.phone_number_id`).
        #[arg(long)]
        phone_number_id: String,
        /// The WhatsApp Business Account's id.
        #[arg(long)]
        waba_id: String,
        /// A system user's access token with `whatsapp_business_messaging` (better given in the
        /// environment than on the command line, where `ps` and the shell's history keep it).
        #[arg(long, env = "WHATSAPP_ACCESS_TOKEN", hide_env_values = true)]
        access_token: String,
        /// The Meta catalog linked to the number.
        #[arg(long)]
        catalog_id: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
enum MerchantCommand {
    /// Create a merchant and print its id and an owner API key (shown once).
    Create {
        /// Display name.
        #[arg(long)]
        name: String,
        /// ISO 4217 currency of its prices.
        #[arg(long, default_value = "EUR")]
        currency: String,
        /// IANA timezone.
        #[arg(long, default_value = "Europe/Paris")]
        timezone: String,
    },
}

#[derive(Debug, Subcommand)]
enum PageCommand {
    /// Connect a Messenger Page (and the Instagram account linked to it) to a merchant.
    Connect {
        /// The merchant's id.
        #[arg(long)]
        merchant: crate::kernel::MerchantId,
        /// Meta's Page id.
        #[arg(long)]
        page_id: PageId,
        /// The Page access token.
        #[arg(long)]
        access_token: String,
        /// Display name.
        #[arg(long)]
        name: Option<String>,
        /// The Instagram professional account linked to the Page (its Direct messages come too).
        #[arg(long)]
        instagram_account_id: Option<String>,
    },
}

/// Parses the arguments and runs the command.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match Config::from_env() {
        Ok(c) => c,
        Err(e) => return fail(format!("configuration: {e}")),
    };
    crate::telemetry::init(config.log_format, "info");
    match run(cli, config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(format!("{e:#}")),
    }
}

fn fail(message: String) -> ExitCode {
    eprintln!("error: {}", message.replace('\n', " "));
    ExitCode::FAILURE
}

fn print(value: &impl serde::Serialize) -> anyhow::Result<()> {
    use std::io::Write;
    let text = serde_json::to_string_pretty(value)?;
    match writeln!(std::io::stdout(), "{text}") {
        // A reader that stopped early (`| head`) is not an error of ours.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => Ok(other?),
    }
}

fn run(cli: Cli, mut config: Config) -> anyhow::Result<()> {
    let db = Db::connect(config.database_url(), config.db_max_connections)?;
    // A bare `threadcart` (what `cargo run` runs) is the newcomer's: dev mode when only loopback can reach
    // it and the database is the embedded SQLite (a production on PostgreSQL behind a local proxy never
    // gets the unsigned dev routes by default). `threadcart serve` is the operator's: dev mode only when
    // asked.
    let bare = cli.command.is_none() && db.backend() == crate::db::Backend::Sqlite;
    match cli.command.unwrap_or(Command::Serve {
        demo: None,
        dev: false,
    }) {
        Command::Serve { demo, dev } => {
            if dev || (bare && crate::dev::is_local(&config)) {
                config.dev = true;
            }
            let demo = demo.unwrap_or(db.backend() == crate::db::Backend::Sqlite);
            // Resolved once (SQLite's key file read or made here), for the demo and the server alike.
            config.secrets_key = Some(config.resolved_secrets_key()?);
            if demo {
                for m in crate::demo::load(&db, &config.secrets()?)? {
                    tracing::info!(merchant = %m.name, merchant.id = %m.merchant_id, page.id = %m.page_id,
                        "demo merchant ready (its public API key is printed by `threadcart demo`)");
                }
            }
            actix_web::rt::System::new().block_on(async move {
                Application::build(config, db)?.run_until_stopped().await?;
                Ok(())
            })
        }
        Command::Migrate => {
            // Db::connect has applied them.
            print(&json!({"migrated": true, "backend": db.backend().name()}))
        }
        Command::Merchant {
            command:
                MerchantCommand::Create {
                    name,
                    currency,
                    timezone,
                },
        } => {
            let new = NewMerchant::parse(&name, &currency, &timezone).map_err(describe)?;
            let (merchant, key) = db.run_blocking(|conn| -> anyhow::Result<_> {
                crate::db::write_transaction(conn, |conn| {
                    let merchant = merchants::create(conn, &new, None)?;
                    let key = keys::create(
                        conn,
                        merchant.id,
                        Role::Owner,
                        Some("created by CLI".into()),
                        None,
                    )?;
                    Ok::<_, diesel::result::Error>((merchant, key))
                })
                .map_err(anyhow::Error::from)
            })?;
            print(&json!({"merchant_id": merchant.id, "api_key": key.plaintext}))
        }
        Command::Page {
            command:
                PageCommand::Connect {
                    merchant,
                    page_id,
                    access_token,
                    name,
                    instagram_account_id,
                },
        } => {
            let mut new = NewPage::parse(&page_id, name.as_deref(), &access_token).map_err(describe)?;
            new.instagram_account_id = instagram_account_id
                .as_deref()
                .map(pages::parse_instagram_account_id)
                .transpose()
                .map_err(|e| describe(vec![e]))?;
            let secrets = config.secrets()?;
            db.run_blocking(|conn| {
                merchants::get(conn, merchant).map_err(|e| match e {
                    diesel::result::Error::NotFound => anyhow::anyhow!("no merchant with id {merchant}"),
                    other => other.into(),
                })
            })?;
            let graph = crate::channels::meta::graph::GraphClient::new(
                &config.graph_api_base,
                &config.graph_api_version,
                config.messenger_app_secret.clone(),
            )?;
            let runtime = actix_web::rt::System::new();
            runtime.block_on(crate::channels::meta::ownership::confirm_page(
                &graph,
                &new.page_id,
                &access_token,
            ))?;
            if let Some(instagram) = &new.instagram_account_id {
                runtime.block_on(crate::channels::meta::ownership::confirm_instagram(
                    &graph,
                    &new.page_id,
                    &access_token,
                    instagram,
                ))?;
            }
            let page = db.run_blocking(|conn| -> anyhow::Result<_> {
                pages::connect(conn, &secrets, merchant, &new).map_err(|e| match e {
                    diesel::result::Error::DatabaseError(
                        diesel::result::DatabaseErrorKind::UniqueViolation,
                        _,
                    ) => anyhow::anyhow!(
                        "Page {} (or its Instagram account) is already connected to a merchant",
                        new.page_id
                    ),
                    other => other.into(),
                })
            })?;
            let status = runtime.block_on(crate::channels::meta::profile::set_profile(
                &db,
                &graph,
                &page.page_id,
                &access_token,
            ));
            print(&json!({
                "merchant_id": page.merchant_id,
                "page_id": page.page_id,
                "name": page.name,
                "token_last4": page.token_last4,
                "messenger_profile": status,
                "instagram_account_id": page.instagram_account_id,
            }))
        }
        Command::Whatsapp {
            command:
                WhatsappCommand::Connect {
                    merchant,
                    phone_number_id,
                    waba_id,
                    access_token,
                    catalog_id,
                },
        } => {
            let new = crate::merchants::whatsapp::NewNumber::parse(
                &phone_number_id,
                &waba_id,
                &access_token,
                catalog_id.as_deref(),
            )
            .map_err(describe)?;
            let secrets = config.secrets()?;
            db.run_blocking(|conn| {
                merchants::get(conn, merchant).map_err(|e| match e {
                    diesel::result::Error::NotFound => anyhow::anyhow!("no merchant with id {merchant}"),
                    other => other.into(),
                })
            })?;
            let graph = crate::channels::meta::graph::GraphClient::new(
                &config.graph_api_base,
                &config.graph_api_version,
                config.messenger_app_secret.clone(),
            )?;
            let described =
                actix_web::rt::System::new().block_on(crate::channels::meta::ownership::confirm_whatsapp(
                    &graph,
                    &new.waba_id,
                    new.phone_number_id.as_str(),
                    &access_token,
                ))?;
            let number = db.run_blocking(|conn| -> anyhow::Result<_> {
                crate::merchants::whatsapp::connect(conn, &secrets, merchant, &new, &described).map_err(|e| {
                    match e {
                        diesel::result::Error::DatabaseError(
                            diesel::result::DatabaseErrorKind::UniqueViolation,
                            _,
                        ) => anyhow::anyhow!(
                            "WhatsApp number {} is already connected to a merchant",
                            new.phone_number_id
                        ),
                        other => other.into(),
                    }
                })
            })?;
            print(&json!({
                "merchant_id": merchant,
                "id": number.id.0,
                "phone_number_id": number.phone_number_id,
                "waba_id": number.waba_id,
                "display_phone_number": number.display_phone_number,
                "verified_name": number.verified_name,
                "catalog_id": number.catalog_id,
                "token_last4": number.token_last4,
            }))
        }
        Command::Demo => print(&json!({
            "merchants": crate::demo::load(&db, &config.secrets()?)?
        })),
    }
}

fn describe(errors: Vec<crate::kernel::FieldError>) -> anyhow::Error {
    let parts: Vec<String> = errors
        .iter()
        .map(|e| format!("--{}: {}", e.field.replace('_', "-"), e.detail))
        .collect();
    anyhow::anyhow!(parts.join("; "))
}
