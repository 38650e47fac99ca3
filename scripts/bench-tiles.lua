-- wrk script of `scripts/bench --tiles`: GET the paths listed one a line in
-- the file named after `--`, in order and round again, deterministically.
-- Every thread walks the same list from its own offset (thread k of n starts
-- k/n of the way in), so two threads do not ask for the same tile at once.
--
--   wrk -t 2 -c 16 -d 10s -s bench-tiles.lua http://host:port -- paths.txt 2

local next_id = 0

function setup(thread)
  thread:set("tid", next_id)
  next_id = next_id + 1
end

function init(args)
  paths = {}
  for line in io.lines(args[1]) do
    if line ~= "" then
      paths[#paths + 1] = line
    end
  end
  if #paths == 0 then
    error("no paths in " .. args[1])
  end
  local threads = tonumber(args[2]) or 1
  i = math.floor((tid or 0) * #paths / threads)
end

function request()
  i = i % #paths + 1
  return wrk.format("GET", paths[i])
end
