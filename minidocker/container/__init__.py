"""Containers on disk, as Docker 20.10 lays them out under ``<data-root>/containers/<id>/``.

* :mod:`.state`      -- config.v2.json: ``Container``, ``State`` (``ps`` status text), ``NetworkSettings``
* :mod:`.hostconfig` -- hostconfig.json: ``HostConfig`` in Go struct order
* :mod:`.store`      -- ``ContainerStore``: create/get/list/save/rename/remove, names and id prefixes
* :mod:`.etcfiles`   -- hostname, hosts, resolv.conf and resolv.conf.hash as libnetwork writes them
* :mod:`.jsonlog`    -- the json-file log driver: ``JsonLogWriter`` and ``read_logs``
"""
