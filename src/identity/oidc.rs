//! Single sign-on with OpenID Connect (authorization code flow with PKCE S256).
//!
//! `begin` records the flow's `state`, `nonce` and PKCE verifier server-side, keyed by a hash
//! of `state` (the provider's redirect back is cross-site, so SameSite cookies cannot carry
//! them), and returns the provider's authorization URL. `finish` takes the flow out of the
//! table (each `state` works once), exchanges the code, and checks the ID token's signature,
//! issuer, audience, expiry and nonce; unsigned tokens are refused. Staff are matched by
//! (issuer, subject); the first sign-in links an invited account only when the provider says
//! the email address is verified.

use openidconnect::core::{
    CoreAuthenticationFlow, CoreClient, CoreGenderClaim, CoreProviderMetadata,
};
use openidconnect::{
    AuthenticationMethodReference, AuthorizationCode, ClientId, ClientSecret, CsrfToken,
    IdTokenClaims, IssuerUrl, Nonce, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, Scope,
    TokenResponse,
};
use serde_json::json;
use time::Duration;

use super::email::email_key;
use super::sessions;
use super::IdentityError;
use crate::audit::{self, Actor, AuditEvent};
use crate::config::{SsoProvider, SsoTotp};
use crate::context::Context;
use crate::store::staff::{self as staff_store, OidcFlowRow, StaffRow};
use crate::store::to_micros;

/// How long someone may spend at the provider before coming back.
pub const FLOW_VALID: Duration = Duration::minutes(10);

/// The HTTP client for talking to providers: no redirects (a token endpoint that redirects
/// is refused rather than followed), and bounded time.
pub struct Providers {
    http: reqwest::Client,
}

impl Providers {
    pub fn new() -> Providers {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(std::time::Duration::from_secs(5))
            .timeout(std::time::Duration::from_secs(15))
            .build()
            .unwrap_or_default();
        Providers { http }
    }
}

impl Default for Providers {
    fn default() -> Self {
        Providers::new()
    }
}

/// Why a single sign-on did not sign anyone in. The words are for the person; the reason
/// code goes to the audit log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SsoRefusal {
    pub reason: &'static str,
    pub message: &'static str,
}

const TRY_AGAIN: &str = "Signing in with your organisation's account did not work. Go back to the sign-in page and try again.";

fn refusal(reason: &'static str) -> SsoRefusal {
    SsoRefusal {
        reason,
        message: TRY_AGAIN,
    }
}

fn provider<'a>(ctx: &'a Context, id: &str) -> Option<&'a SsoProvider> {
    ctx.config.sso_providers.iter().find(|p| p.id == id)
}

fn redirect_url(ctx: &Context, provider: &SsoProvider) -> String {
    format!(
        "{}/login/sso/{}/callback",
        ctx.config.public_url, provider.id
    )
}

async fn discover(http: &reqwest::Client, p: &SsoProvider) -> Result<CoreProviderMetadata, String> {
    let issuer = IssuerUrl::new(p.issuer.clone()).map_err(|e| e.to_string())?;
    CoreProviderMetadata::discover_async(issuer, http)
        .await
        .map_err(|e| format!("discovery at {} failed: {e}", p.issuer))
}

/// Start a sign-in at `provider_id`: the URL to send the person to, or None for an unknown
/// provider.
pub async fn begin(
    ctx: &Context,
    providers: &Providers,
    provider_id: &str,
    return_to: Option<&str>,
) -> Result<Option<String>, IdentityError> {
    let Some(p) = provider(ctx, provider_id) else {
        return Ok(None);
    };
    let metadata = discover(&providers.http, p)
        .await
        .map_err(IdentityError::Sso)?;
    let redirect =
        RedirectUrl::new(redirect_url(ctx, p)).map_err(|e| IdentityError::Sso(e.to_string()))?;
    let client = CoreClient::from_provider_metadata(
        metadata,
        ClientId::new(p.client_id.clone()),
        Some(ClientSecret::new(p.client_secret.clone())),
    )
    .set_redirect_uri(redirect);
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let mut request = client
        .authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .set_pkce_challenge(challenge);
    for scope in &p.scopes {
        if scope != "openid" {
            request = request.add_scope(Scope::new(scope.clone()));
        }
    }
    let (url, csrf_state, nonce) = request.url();
    let now = ctx.clock.now();
    let mut tx = ctx.db.begin().await?;
    staff_store::insert_oidc_flow(
        &mut tx,
        &sessions::id_hash(csrf_state.secret()),
        &OidcFlowRow {
            provider: p.id.clone(),
            nonce: nonce.secret().clone(),
            pkce_verifier: verifier.secret().clone(),
            return_to: return_to.map(str::to_string),
            expires_at: to_micros(now + FLOW_VALID),
        },
        to_micros(now),
    )
    .await?;
    tx.commit().await?;
    Ok(Some(url.to_string()))
}

/// Who the provider says signed in.
#[derive(Debug, Clone)]
pub struct ProviderIdentity {
    pub issuer: String,
    pub subject: String,
    pub email: Option<String>,
    pub email_verified: bool,
    pub amr: Vec<String>,
}

/// What to do next with a person the provider vouched for.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)]
pub enum SsoOutcome {
    Refused(SsoRefusal),
    /// Matched: sign in, straight away or after paydesk's own code.
    Matched {
        staff: StaffRow,
        needs_code: bool,
        return_to: Option<String>,
        provider: String,
    },
}

/// Finish a sign-in from the provider's redirect back.
pub async fn finish(
    ctx: &Context,
    providers: &Providers,
    provider_id: &str,
    csrf_state: Option<&str>,
    code: Option<&str>,
    error: Option<&str>,
    ip: Option<String>,
) -> Result<SsoOutcome, IdentityError> {
    let outcome = finish_inner(ctx, providers, provider_id, csrf_state, code, error).await?;
    if let Err((refusal, detail)) = &outcome {
        audit::record(
            &ctx.db,
            ctx.clock.now(),
            AuditEvent::new(
                Actor::Anonymous,
                "authn_sso_fail",
                format!("sso:{provider_id}"),
            )
            .failed()
            .from_ip(ip.clone())
            .details(json!({"reason": refusal.reason, "detail": detail})),
        )
        .await?;
    }
    let (identity, flow) = match outcome {
        Ok(v) => v,
        Err((refusal, _)) => return Ok(SsoOutcome::Refused(refusal)),
    };
    match_staff(ctx, provider_id, identity, flow, ip).await
}

type Finished = Result<(ProviderIdentity, OidcFlowRow), (SsoRefusal, String)>;

async fn finish_inner(
    ctx: &Context,
    providers: &Providers,
    provider_id: &str,
    csrf_state: Option<&str>,
    code: Option<&str>,
    error: Option<&str>,
) -> Result<Finished, IdentityError> {
    let Some(p) = provider(ctx, provider_id) else {
        return Ok(Err((refusal("unknown provider"), provider_id.to_string())));
    };
    let Some(csrf_state) = csrf_state.filter(|s| !s.is_empty() && s.len() <= 512) else {
        return Ok(Err((refusal("missing state"), String::new())));
    };
    // Take the flow out first: whatever happens next, this state cannot be used again.
    let now = ctx.clock.now();
    let mut tx = ctx.db.begin().await?;
    let flow = staff_store::take_oidc_flow(&mut tx, &sessions::id_hash(csrf_state)).await?;
    tx.commit().await?;
    let Some(flow) = flow else {
        return Ok(Err((refusal("unknown or used state"), String::new())));
    };
    if flow.provider != p.id || flow.expires_at <= to_micros(now) {
        return Ok(Err((
            refusal("state expired or for another provider"),
            String::new(),
        )));
    }
    if let Some(error) = error {
        return Ok(Err((
            SsoRefusal {
                reason: "provider returned an error",
                message: "Your organisation's sign-in service did not sign you in. Go back to the sign-in page and try again.",
            },
            error.chars().take(100).collect(),
        )));
    }
    let Some(code) = code.filter(|c| !c.is_empty() && c.len() <= 2048) else {
        return Ok(Err((refusal("missing code"), String::new())));
    };
    let metadata = match discover(&providers.http, p).await {
        Ok(m) => m,
        Err(e) => return Ok(Err((refusal("discovery failed"), e))),
    };
    let redirect = match RedirectUrl::new(redirect_url(ctx, p)) {
        Ok(r) => r,
        Err(e) => return Ok(Err((refusal("bad redirect URL"), e.to_string()))),
    };
    let client = CoreClient::from_provider_metadata(
        metadata,
        ClientId::new(p.client_id.clone()),
        Some(ClientSecret::new(p.client_secret.clone())),
    )
    .set_redirect_uri(redirect);
    let request = match client.exchange_code(AuthorizationCode::new(code.to_string())) {
        Ok(r) => r,
        Err(e) => return Ok(Err((refusal("no token endpoint"), e.to_string()))),
    };
    let response = match request
        .set_pkce_verifier(PkceCodeVerifier::new(flow.pkce_verifier.clone()))
        .request_async(&providers.http)
        .await
    {
        Ok(r) => r,
        Err(e) => return Ok(Err((refusal("code exchange failed"), e.to_string()))),
    };
    let Some(id_token) = response.id_token() else {
        return Ok(Err((refusal("no ID token"), String::new())));
    };
    // Signature (against the provider's published keys; `alg: none` is refused), issuer,
    // audience, expiry and nonce.
    let verifier = client.id_token_verifier();
    let claims: &IdTokenClaims<openidconnect::EmptyAdditionalClaims, CoreGenderClaim> =
        match id_token.claims(&verifier, &Nonce::new(flow.nonce.clone())) {
            Ok(c) => c,
            Err(e) => return Ok(Err((refusal("ID token rejected"), e.to_string()))),
        };
    let amr = claims
        .auth_method_refs()
        .map(|v| {
            v.iter()
                .map(|a: &AuthenticationMethodReference| a.to_string())
                .collect()
        })
        .unwrap_or_default();
    Ok(Ok((
        ProviderIdentity {
            issuer: claims.issuer().to_string(),
            subject: claims.subject().to_string(),
            email: claims.email().map(|e| e.to_string()),
            email_verified: claims.email_verified().unwrap_or(false),
            amr,
        },
        flow,
    )))
}

/// Whether the provider says it used more than one factor (RFC 8176 `amr`).
pub fn provider_did_mfa(amr: &[String]) -> bool {
    if amr.iter().any(|a| a == "mfa") {
        return true;
    }
    let knowledge = amr.iter().any(|a| a == "pwd" || a == "pin");
    let possession = amr
        .iter()
        .any(|a| ["otp", "hwk", "swk", "sms", "tel", "sc"].contains(&a.as_str()));
    let inherence = amr
        .iter()
        .any(|a| ["fpt", "face", "iris", "retina", "vbm"].contains(&a.as_str()));
    [knowledge, possession, inherence]
        .iter()
        .filter(|b| **b)
        .count()
        >= 2
}

async fn match_staff(
    ctx: &Context,
    provider_id: &str,
    identity: ProviderIdentity,
    flow: OidcFlowRow,
    ip: Option<String>,
) -> Result<SsoOutcome, IdentityError> {
    let now = ctx.clock.now();
    let linked = staff_store::oidc_identity(&ctx.db, &identity.issuer, &identity.subject).await?;
    let (issuer, subject, fail_ip) = (
        identity.issuer.clone(),
        identity.subject.clone(),
        ip.clone(),
    );
    let fail = |reason: &'static str, message: &'static str| {
        let (issuer, subject, ip) = (issuer.clone(), subject.clone(), fail_ip.clone());
        async move {
            audit::record(
                &ctx.db,
                now,
                AuditEvent::new(
                    Actor::Anonymous,
                    "authn_sso_fail",
                    format!("sso:{provider_id}"),
                )
                .failed()
                .from_ip(ip)
                .details(json!({"reason": reason, "issuer": issuer, "subject": subject})),
            )
            .await?;
            Ok::<_, IdentityError>(SsoOutcome::Refused(SsoRefusal { reason, message }))
        }
    };
    const UNKNOWN: &str = "There is no paydesk account for the person your organisation signed in. Ask an administrator of your service to invite you, then sign in again.";
    let staff = match linked {
        Some(id) => staff_store::staff_by_id(&ctx.db, id).await?,
        None => {
            let Some(email) = identity.email.clone() else {
                return fail("no email in the ID token", UNKNOWN).await;
            };
            let Some(candidate) =
                staff_store::staff_by_email_key(&ctx.db, &email_key(&email)).await?
            else {
                return fail("unknown person", UNKNOWN).await;
            };
            if candidate.status != "invited" {
                return fail(
                    "account exists but was never linked to this provider",
                    UNKNOWN,
                )
                .await;
            }
            if !identity.email_verified {
                return fail(
                    "email not verified",
                    "Your organisation has not confirmed your email address, so paydesk cannot link your account. Ask your IT team to verify it, then try again.",
                )
                .await;
            }
            let mut tx = ctx.db.begin().await?;
            // An invitation grants only what its inviters may still grant now.
            let accepted = super::invitation::accept(&mut tx, now, candidate.id, &candidate.email);
            if accepted.await? == super::invitation::Accepted::NothingLeft {
                tx.rollback().await?;
                return fail(
                    "invitation lapsed: its inviter can no longer grant it",
                    UNKNOWN,
                )
                .await;
            }
            staff_store::insert_oidc_identity(
                &mut tx,
                &identity.issuer,
                &identity.subject,
                candidate.id,
                to_micros(now),
            )
            .await?;
            audit::append(
                &mut tx,
                now,
                AuditEvent::new(
                    Actor::staff(candidate.id, &candidate.email),
                    "authn_sso_linked",
                    format!("staff:{}", candidate.id),
                )
                .from_ip(ip.clone())
                .details(json!({"issuer": identity.issuer, "subject": identity.subject})),
            )
            .await?;
            tx.commit().await?;
            Some(candidate)
        }
    };
    let Some(staff) = staff.filter(|s| s.status != "disabled") else {
        return fail("account disabled", UNKNOWN).await;
    };
    let needs_code = match ctx.config.sso_totp {
        SsoTotp::Always => true,
        SsoTotp::Never => false,
        SsoTotp::UnlessProviderMfa => !provider_did_mfa(&identity.amr),
    };
    Ok(SsoOutcome::Matched {
        staff,
        needs_code,
        return_to: flow.return_to,
        provider: provider_id.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::provider_did_mfa;

    #[test]
    fn multi_factor_from_amr() {
        let v = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(provider_did_mfa(&v(&["mfa"])));
        assert!(provider_did_mfa(&v(&["pwd", "otp"])));
        assert!(provider_did_mfa(&v(&["pwd", "fpt"])));
        assert!(!provider_did_mfa(&v(&["pwd"])));
        assert!(
            !provider_did_mfa(&v(&["otp", "sms"])),
            "two possession factors are one kind"
        );
        assert!(!provider_did_mfa(&[]));
    }
}
