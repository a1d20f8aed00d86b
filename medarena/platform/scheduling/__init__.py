"""The scheduler in pieces: the loop (:mod:`.loop`), where jobs run (:mod:`.ray_adapter`,
:mod:`.in_process`), the one-scheduler lock (:mod:`.lock`), what is written to the database
(:mod:`.recorder`) and what there is to run (:mod:`.work`)."""
