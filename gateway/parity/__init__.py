"""Shadow parity: compare the legacy's answer with the candidate's, cancel noise, score a route.

Pure and standard-library only, so the corridor, the admin API, the CLI and the Lambda async
path can all call it:

    spec.parse_shadow(block) -> (ShadowSpec | None, problems)    at config load
    spec.should_copy(spec, method, headers, draw)                 per request
    spec.should_sample_noise(spec, draw)                          per copied request
    recorder.Recorder.pair(route, spec, Pair(...), now)           once both answers are in
    recorder.Recorder.noise(route, spec, primary, again, now)     the primary asked twice
    recorder.Recorder.outcome(route, "dropped" | "skipped", now)  no pair to compare
    report.parity_report(recorder, specs, now, route, window)     GET /_gateway/parity
    report.render_text(report)                                    gateway parity URL [ROUTE]
    score.score(tally, compare_spec)                              a rollout gate's reading
"""
