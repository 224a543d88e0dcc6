"""Shadow parity: compare the legacy's answer with the candidate's, cancel noise, score a route.

Pure and standard-library only, so the corridor, the admin API, the CLI and the Lambda async
path can all call it: `parse_shadow` and `should_copy` (spec), `judge` (compare), a
`ParityStore` (counters), `EvidenceLog` (evidence), `score` (score) and `report_json` /
`render_text` (report).
"""
