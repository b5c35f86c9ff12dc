min-free-space now also stops container log writing: below the reserve each running container's log stops growing (the container runs on, the daemon logs why), and it resumes once the space is back.
