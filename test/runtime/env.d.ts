/// <reference types="@cloudflare/vitest-plugin/types" />
import type { FloeEnv } from "../../src/runtime/env.js";

declare global {
  namespace Cloudflare {
    interface Env extends FloeEnv {}
    interface GlobalProps {
      mainModule: typeof import("../../workers/index.js");
    }
  }
}
