The journald log driver sends dockerd 28's CONTAINER_LOG_EPOCH (one random id per run of the container) and CONTAINER_LOG_ORDINAL (1, 2, ... within it) with every message.
