"""Getting real data and published weights: the sources behind `atdr download`.

One module per source (`youtube`, `archives`, `esc50`, `speechcommands`, `weights`), built on
`http` (resumable, verified fetches), `unpack` (archive extraction that never leaves its folder)
and `addresses` (every download address, and how to redirect them to a mirror).
"""
