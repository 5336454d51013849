// The sign-in page: the access key and secret sign the sign-in request here (SigV4); the
// server answers with a session cookie. The secret leaves this page only as a signature.
import * as api from "./api";
import { h } from "./dom";

export function renderLogin(root: HTMLElement, server: api.ServerInfo, done: (s: api.SessionInfo) => void): void {
  const error = h("p.error", { role: "alert", id: "login-error" });
  const key = h("input", {
    id: "access-key",
    name: "access-key",
    autocomplete: "username",
    required: true,
    spellcheck: false,
    autocapitalize: "off",
    placeholder: "AKIA…",
  });
  const secret = h("input", {
    id: "secret-key",
    name: "secret-key",
    type: "password",
    autocomplete: "current-password",
    required: true,
  });
  const submit = h("button.primary", { type: "submit", id: "sign-in" }, "Sign in");
  const form = h(
    "form.card.login",
    {
      onsubmit: async (e: Event) => {
        e.preventDefault();
        error.textContent = "";
        submit.disabled = true;
        submit.textContent = "Signing in…";
        try {
          const s = await api.login({ accessKeyId: key.value.trim(), secretAccessKey: secret.value }, server);
          secret.value = "";
          done(s);
        } catch (err) {
          const e = err as api.ApiError;
          error.textContent =
            e.type === "UnrecognizedClientException"
              ? "No such access key on this server (or it was revoked)."
              : e.type === "InvalidSignatureException"
                ? "The secret access key does not match the access key."
                : `${e.type ?? "Error"}: ${e.message}`;
          secret.select();
        } finally {
          submit.disabled = false;
          submit.textContent = "Sign in";
        }
      },
    },
    h("div.brand.big", null, h("span.logo", { "aria-hidden": "true" }), "Vigil"),
    h("h1", null, "Sign in"),
    h("label", { htmlFor: "access-key" }, "Access key ID"),
    key,
    h("label", { htmlFor: "secret-key" }, "Secret access key"),
    secret,
    error,
    submit,
    h(
      "p.hint",
      null,
      `Keys come from \`vigil keys create\` (or the root key the server printed at its first start). `,
      `The secret never leaves this page: it signs the sign-in request (SigV4, region ${server.Region}), `,
      `and the session lasts ${server.SessionHours} h.`,
    ),
  );
  document.title = "Sign in · Vigil";
  root.append(h("main.center", null, form));
  key.focus();
}
