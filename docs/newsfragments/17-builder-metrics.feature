dockerd's builder metrics: builder_builds_triggered_total and builder_builds_failed_total by moby's reasons (each at 0 from the start).
