// Create, edit and delete: native <dialog>s (focus kept inside, Esc closes), each calling the
// KVS operations with the session's key.
import * as api from "./api";
import { h } from "./dom";

const LL_TAG = "vigil:low-latency-hls";

function dialog(title: string, fields: HTMLElement[], submitLabel: string, danger = false): {
  dlg: HTMLDialogElement;
  form: HTMLFormElement;
  error: HTMLElement;
  submit: HTMLButtonElement;
} {
  const error = h("p.error", { role: "alert" });
  const submit = h("button", { type: "submit", className: danger ? "danger-solid" : "primary", value: "ok" }, submitLabel);
  const cancel = h("button.ghost", { type: "button", value: "cancel" }, "Cancel");
  const form = h("form", { method: "dialog" }, h("h2", null, title), ...fields, error, h("div.buttons", null, cancel, submit));
  const dlg = h("dialog", { "aria-label": title }, form);
  cancel.addEventListener("click", () => dlg.close("cancel"));
  document.body.append(dlg);
  dlg.addEventListener("close", () => dlg.remove());
  return { dlg, form, error, submit };
}

function field(label: string, input: HTMLElement, hint?: string): HTMLElement {
  return h("div.field", null, h("label", { htmlFor: input.id }, label), input, hint && h("p.hint", null, hint));
}

/** Runs `action` on submit; closes the dialog when it succeeds, shows its error otherwise. */
function run(d: ReturnType<typeof dialog>, action: () => Promise<void>): Promise<boolean> {
  return new Promise((resolve) => {
    d.form.addEventListener("submit", async (e) => {
      e.preventDefault();
      d.submit.disabled = true;
      d.error.textContent = "";
      try {
        await action();
        d.dlg.close("ok");
        resolve(true);
      } catch (err) {
        const x = err as api.ApiError;
        d.error.textContent = `${x.type ?? "Error"}: ${x.message}`;
      } finally {
        d.submit.disabled = false;
      }
    });
    d.dlg.addEventListener("close", () => resolve(false));
    d.dlg.showModal();
  });
}

export async function createDialog(): Promise<string | null> {
  const name = h("input", { id: "stream-name", required: true, pattern: "[a-zA-Z0-9_.\\-]{1,256}", autocomplete: "off", spellcheck: false, placeholder: "front-door" });
  const retention = h("input", { id: "stream-retention", type: "number", min: 0, max: 87600, value: "24", required: true });
  const media = h("input", { id: "stream-media", value: "video/h264", placeholder: "video/h264,audio/aac" });
  const device = h("input", { id: "stream-device", placeholder: "optional" });
  const ll = h("input", { id: "stream-ll", type: "checkbox", checked: true });
  const d = dialog(
    "New stream",
    [
      field("Name", name, "Letters, digits, _ . -"),
      field("Retention (hours)", retention, "0 keeps nothing: the stream can be watched live with GetMedia only."),
      field("Media type", media),
      field("Device name", device),
      h("div.field.check", null, ll, h("label", { htmlFor: "stream-ll" }, "Low-latency HLS for every player (tag ", h("code", null, LL_TAG), ")")),
    ],
    "Create",
  );
  let created: string | null = null;
  const ok = await run(d, async () => {
    const tags: Record<string, string> = {};
    if (ll.checked) tags[LL_TAG] = "true";
    await api.kvs("createStream", {
      StreamName: name.value.trim(),
      DataRetentionInHours: Number(retention.value),
      MediaType: media.value.trim() || undefined,
      DeviceName: device.value.trim() || undefined,
      Tags: Object.keys(tags).length ? tags : undefined,
    });
    created = name.value.trim();
  });
  return ok ? created : null;
}

export async function editDialog(s: api.StreamSummary): Promise<boolean> {
  const retention = h("input", { id: "edit-retention", type: "number", min: 0, max: 87600, value: String(s.DataRetentionInHours), required: true });
  const media = h("input", { id: "edit-media", value: s.MediaType ?? "" });
  const device = h("input", { id: "edit-device", value: s.DeviceName ?? "" });
  const llNow = s.Tags[LL_TAG]?.toLowerCase() === "true";
  const ll = h("input", { id: "edit-ll", type: "checkbox", checked: llNow });
  const d = dialog(
    `Edit ${s.StreamName}`,
    [
      field("Retention (hours)", retention, "Shortening it deletes what falls outside the new retention."),
      field("Media type", media),
      field("Device name", device),
      h("div.field.check", null, ll, h("label", { htmlFor: "edit-ll" }, "Low-latency HLS for every player")),
    ],
    "Save",
  );
  return run(d, async () => {
    let version = s.Version;
    const want = Number(retention.value);
    if (want !== s.DataRetentionInHours) {
      const increase = want > s.DataRetentionInHours;
      await api.kvs("updateDataRetention", {
        StreamName: s.StreamName,
        CurrentVersion: version,
        Operation: increase ? "INCREASE_DATA_RETENTION" : "DECREASE_DATA_RETENTION",
        DataRetentionChangeInHours: Math.abs(want - s.DataRetentionInHours),
      });
      version = (await api.kvs<{ StreamInfo: { Version: string } }>("describeStream", { StreamName: s.StreamName })).StreamInfo.Version;
    }
    if (media.value.trim() !== (s.MediaType ?? "") || device.value.trim() !== (s.DeviceName ?? "")) {
      await api.kvs("updateStream", {
        StreamName: s.StreamName,
        CurrentVersion: version,
        MediaType: media.value.trim() || undefined,
        DeviceName: device.value.trim() || undefined,
      });
    }
    if (ll.checked !== llNow) {
      if (ll.checked) await api.kvs("tagStream", { StreamName: s.StreamName, Tags: { [LL_TAG]: "true" } });
      else await api.kvs("untagStream", { StreamName: s.StreamName, TagKeyList: [LL_TAG] });
    }
  });
}

export async function deleteDialog(s: api.StreamSummary): Promise<boolean> {
  const confirm = h("input", { id: "delete-confirm", autocomplete: "off", spellcheck: false, required: true, placeholder: s.StreamName });
  const d = dialog(
    `Delete ${s.StreamName}?`,
    [
      h("p", null, "The stream and all its recordings are deleted and cannot be recovered (their keys are destroyed)."),
      field(`Type ${s.StreamName} to confirm`, confirm),
    ],
    "Delete",
    true,
  );
  return run(d, async () => {
    if (confirm.value !== s.StreamName) throw new api.ApiError("Confirmation", "The name does not match.", 400);
    await api.kvs("deleteStream", { StreamName: s.StreamName, CurrentVersion: s.Version });
  });
}
