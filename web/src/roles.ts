import type { Me, Role } from "./types.ts";

const RANK: Record<Role, number> = { viewer: 0, operator: 1, admin: 2 };

/** Whether the signed-in key's role reaches `role`: the console hides what it may not do (the API refuses it too). */
export const may = (me: Me | undefined, role: Role) => !!me && RANK[me.role] >= RANK[role];
