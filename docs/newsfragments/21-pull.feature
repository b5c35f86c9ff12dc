docker pull and docker load extract the missing layers of an image two at a time (each in a helper forked from the fork server), then record them in order as before.
