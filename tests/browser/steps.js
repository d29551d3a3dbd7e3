// The steps tests/browser.rs runs, one Runtime.evaluate each, in a page the broker
// serves (so the client's socket is let in by the Origin rule's same-host default).
// Each step returns plain JSON that the test compares exactly; between steps the
// test acts from outside (a raw client publishes, the broker restarts).
window.steps = (() => {
  const module = import(location.origin + "/switchyard.js");
  const s = {};
  async function until(what, cond, ms = 8000) {
    const t0 = Date.now();
    while (!cond()) {
      if (Date.now() - t0 > ms) throw new Error(`timed out waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 10));
    }
  }
  return {
    /** The example page's own state line, once it is connected. */
    async examplePage() {
      await until("the example page to connect", () => document.getElementById("state").textContent === "subscribed");
      document.getElementById("topic").value = "demo.hello";
      document.getElementById("text").value = "hi";
      document.querySelector("#publish button").click();
      await until("the page to print its message", () => document.getElementById("log").textContent !== "");
      return document.getElementById("log").textContent;
    },

    /** A socket to the broker under another host name than the page's: refused. */
    async otherOrigin(url) {
      const { connect } = await module;
      try {
        await connect({ url, reconnect: false });
        return "admitted";
      } catch (e) {
        return e.code;
      }
    },

    async subscribe() {
      const { connect } = await module;
      s.states = [];
      s.a = await connect({
        name: "browser test",
        maxDelay: 500,
        onstate: (st) => s.states.at(-1) !== st && s.states.push(st),
      });
      s.burst = [];
      await s.a.sub("browser.burst", (m) => s.burst.push([m.seq, m.data]));
      s.before = { ...s.a.received };
      return { protocol: s.a.welcome.protocol, states: s.states };
    },

    /** What the burst the test packed into one frame brought, and in how many frames. */
    async burst() {
      await until("5 burst messages", () => s.burst.length >= 5);
      return {
        got: s.burst,
        frames: s.a.received.frames - s.before.frames,
        messages: s.a.received.messages - s.before.messages,
      };
    },

    async filtered() {
      const got = [];
      await s.a.sub("browser.h.*", (m) => got.push([m.topic, m.data, m.headers]), { filter: "region = 'eu'" });
      const uk = await s.a.pub("browser.h.one", 1, { headers: { region: "uk" } });
      const eu = await s.a.pub("browser.h.two", 2, { headers: { region: "eu" } });
      await until("the eu message", () => got.length >= 1);
      return { got, seqs: [uk.seq, eu.seq] };
    },

    async queue() {
      const jobs = [];
      await s.a.consume("browser.jobs", (job) => {
        jobs.push([job.data, job.attempt]);
        return job.data === "again" && job.attempt === 1 ? job.nack() : job.ack();
      });
      const once = await s.a.send("browser.jobs", "once", { confirm: "done" });
      const again = await s.a.send("browser.jobs", "again", { confirm: "done" });
      return { jobs, msgs: [once.msg, again.msg] };
    },

    /** A job nobody takes within its ttl goes to the dead-letter queue as expired. */
    async expired() {
      await s.a.declare("browser.mail", { dead_letter: "browser.mail.dead" });
      await s.a.send("browser.mail", "hi", { ttlMs: 200 });
      const dead = [];
      await s.a.consume("browser.mail.dead", (job) => {
        dead.push([job.data, job.headers["x-dead-letter-reason"]]);
        return job.ack();
      });
      await until("the expired job", () => dead.length >= 1);
      return dead;
    },

    async requests() {
      await s.a.reply("browser.rpc", (d) => ({ sum: d.a + d.b }));
      const answer = await s.a.request("browser.rpc", { a: 2, b: 3 }, { timeout: 5000 });
      let nobody;
      try {
        await s.a.request("browser.nobody", 1, { timeout: 300 });
        nobody = "answered";
      } catch (e) {
        nobody = e.code;
      }
      return { answer, nobody };
    },

    async beforeRestart() {
      s.after = [];
      s.later = [];
      await s.a.sub("browser.after", (m) => s.after.push(m.data));
      await s.a.consume("browser.later", (job) => {
        s.later.push([job.data, job.attempt]);
        return job.ack();
      });
      return s.states;
    },

    /** Once the broker is gone: a publish made now waits for the connection. */
    async whileDown() {
      await until("the client to notice", () => s.states.at(-1) === "reconnecting");
      s.pending = s.a.pub("browser.after", "while down").then(
        () => "ok",
        (e) => e.code,
      );
      return s.states;
    },

    async backUp() {
      await until("the client to reconnect", () => s.states.at(-1) === "open");
      return { states: s.states, pending: await s.pending };
    },

    async afterRestart() {
      await until("the message and the job", () => s.after.length >= 2 && s.later.length >= 1);
      return { after: s.after, later: s.later };
    },
  };
})();
"steps ready";
